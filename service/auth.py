"""API-key auth: ``Authorization: Bearer KEY``; two roles (user, admin); keys compared in constant time."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.errors import APIError

Role = Literal["user", "admin"]
_bearer = HTTPBearer(auto_error=False, description="API key: the user key or the admin key")


def _role_of(request: Request, key: str) -> Role | None:
    """Which role a key grants (admin keys can do everything users can)."""
    settings = request.app.state.settings
    is_admin = hmac.compare_digest(key.encode(), settings.admin_api_key.encode())
    is_user = hmac.compare_digest(key.encode(), settings.api_key.encode())
    if is_admin:
        return "admin"
    return "user" if is_user else None


def current_role(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Role:
    """401 without a valid key; otherwise the caller's role."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or not creds.credentials:
        raise APIError(401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'", headers=challenge)
    role = _role_of(request, creds.credentials)
    if role is None:
        raise APIError(401, "unauthorized", "invalid API key", headers=challenge)
    return role


def require_user(role: Role = Depends(current_role)) -> Role:
    """Any valid key."""
    return role


def require_admin(role: Role = Depends(current_role)) -> Role:
    """The admin key only; 403 for a user key."""
    if role != "admin":
        raise APIError(403, "forbidden", "this route needs the admin API key")
    return role
