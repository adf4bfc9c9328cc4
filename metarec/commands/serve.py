"""``metarec serve`` (the REST API under uvicorn) and ``metarec worker`` (runs queued jobs on one device)."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from typing import TYPE_CHECKING

from metarec.commands._common import note

if TYPE_CHECKING:
    from service.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` and ``worker`` commands (settings come from METAREC_* environment variables)."""
    p = sub.add_parser("serve", help="start the REST API (settings from METAREC_* environment variables)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_serve)
    w = sub.add_parser("worker", help="run queued fine-tuning and rebuild jobs (one process per device)")
    w.add_argument("--device", default=None,
                   help="cpu | cuda:N | auto; default: one worker per entry of METAREC_DEVICES (default auto)")
    w.add_argument("--once", action="store_true", help="exit when the queue is empty")
    w.add_argument("--kinds", default=None,
                   help="comma-separated job kinds to take (default: all: finetune,rebuild,portfolio_update)")
    w.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    w.set_defaults(func=cmd_worker)


def _settings() -> Settings:
    """Settings from the environment; a bad value is one clear line, not a traceback."""
    from pydantic import ValidationError

    from metafeatures.errors import ConfigError
    from service.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError("settings", "METAREC_*", problems) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Build the app from the environment and serve it with uvicorn."""
    import uvicorn

    from service.app import create_app
    from service.settings import DEV_USER_KEY

    settings = _settings()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(settings)
    note(f"metarec API on http://{args.host}:{args.port} (docs at /docs), env {settings.env}, "
         f"database {settings.db_url.split('@')[-1]}")
    if settings.api_key == DEV_USER_KEY:
        note(f"development user key: {DEV_USER_KEY}")
    # h11, not httptools: h11 caps the request line + headers (httptools reads headers of any size, so one
    # 64 MiB header without a key could stall the server); an oversized header is answered 400 and dropped.
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, http="h11",
                h11_max_incomplete_event_size=settings.max_header_bytes)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """One worker for ``--device``; without it, one child process per configured device."""
    from service.worker import serve_worker

    settings = _settings()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("hpbandster").setLevel(max(logging.WARNING, logging.getLogger().level))
    devices = [args.device] if args.device else list(settings.devices)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    if len(devices) == 1:
        serve_worker(settings, devices[0], once=args.once, kinds=kinds)
        return 0
    cmd = [sys.executable, "-m", "metarec.cli", "worker", "--log-level", args.log_level,
           *(["--kinds", args.kinds] if args.kinds else [])]
    children = [subprocess.Popen([*cmd, "--device", d, *(["--once"] if args.once else [])]) for d in devices]
    note(f"started {len(children)} workers: {', '.join(devices)}")
    try:
        return max(c.wait() for c in children)
    except KeyboardInterrupt:
        for c in children:
            c.terminate()
        return max(c.wait() for c in children)
