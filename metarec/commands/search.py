"""``metarec search worker``: join a running BOHB master (e.g. from another host of a cluster)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` command group."""
    p = sub.add_parser("search", help="offline BOHB search helpers")
    ssub = p.add_subparsers(dest="search_cmd", required=True, metavar="{worker}")
    w = ssub.add_parser("worker", help="join a BOHB run as a worker; exits when the master shuts down")
    w.add_argument("--task", type=Path, required=True,
                   help="worker.json written by the master into the run directory (shared storage)")
    w.add_argument("--nameserver", default=None, help="HOST:PORT of the nameserver (default: from the task)")
    w.add_argument("--run-id", default=None, help="run id (default: from the task)")
    w.add_argument("--worker-id", type=int, default=os.getpid(), help="distinguishes workers on one host")
    w.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Serve BOHB evaluations until the master is done."""
    from metafeatures.errors import ArtifactError
    from offline_search.hpb import run_worker_from_task

    if not args.task.is_file():
        raise ArtifactError(f"{args.task}: no such worker task file (the master writes it when it starts)")
    run_worker_from_task(args.task, nameserver=args.nameserver, run_id=args.run_id, worker_id=args.worker_id)
    return 0
