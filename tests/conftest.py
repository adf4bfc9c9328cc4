"""Test-wide settings: a private cache per test, two torch threads, no network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see metafeatures/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test writes metarec caches into its own folder, never the user's home."""
    cache = tmp_path_factory.mktemp("metarec-cache")
    monkeypatch.setenv("METAREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not touch the network: outbound connections to non-loopback hosts fail loudly."""
    real = socket.create_connection

    def guarded(address: tuple, *args: object, **kwargs: object) -> socket.socket:
        host = str(address[0])
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"network access attempted in a test: {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
