"""The only module that imports hpbandster: nameserver, BOHB master and worker processes.

hpbandster 0.7.4 (unmaintained since 2019) talks through Pyro4, whose serpent serializer writes numpy
scalars as ``np.float64(3.0)``, which the other side cannot parse: a run then hangs silently. Every
process that takes part registers numpy's scalar types with serpent first
(:func:`register_numpy_with_serpent`), configurations are cast to builtins at the boundary, and the
nameserver listens on 127.0.0.1 with an OS-chosen port unless a host/port is given.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Objective = Callable[[dict[str, Any], float], dict[str, Any]]


def register_numpy_with_serpent() -> None:
    """Make serpent serialise numpy scalars as plain Python values (idempotent)."""
    import serpent

    def as_builtin(obj: Any, serializer: Any, outputstream: Any, indentlevel: int) -> None:
        serializer._serialize(obj.item(), outputstream, indentlevel)

    for kind in (np.floating, np.integer, np.str_, np.bool_):
        serpent.register_class(kind, as_builtin)


def to_builtins(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays inside dicts and lists into builtins."""
    if isinstance(value, Mapping):
        return {str(k): to_builtins(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtins(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def resolve(ref: str) -> Objective:
    """``package.module:function`` -> the function (objectives cross process boundaries by name)."""
    module, _, name = ref.partition(":")
    if not module or not name:
        raise ValueError(f"objective must be given as 'package.module:function', got {ref!r}")
    return getattr(importlib.import_module(module), name)


def _make_worker(objective_ref: str, run_id: str, host: str, port: int, worker_id: int) -> Any:
    """An hpbandster Worker whose compute() calls the named objective and never raises."""
    from hpbandster.core.worker import Worker

    objective = resolve(objective_ref)

    class ObjectiveWorker(Worker):  # type: ignore[misc]
        """Calls the objective; a failure becomes a bad result with the reason, never a crashed run."""

        def compute(self, config: dict, budget: float, **kwargs: Any) -> dict[str, Any]:
            try:
                out = objective(to_builtins(config), float(budget))
                return {"loss": float(out["loss"]), "info": to_builtins(out.get("info", {}))}
            except Exception as exc:  # noqa: BLE001 - reported to BOHB, see docstring
                return {"loss": float("inf"), "info": {"error": f"{type(exc).__name__}: {exc}"}}

    return ObjectiveWorker(run_id=run_id, nameserver=host, nameserver_port=port, id=worker_id,
                           logger=logging.getLogger(f"metarec.bohb.worker{worker_id}"))


def worker_main(objective_ref: str, run_id: str, host: str, port: int, worker_id: int) -> None:
    """Entry point of a worker process: register serpent types, join the nameserver, serve until shutdown."""
    register_numpy_with_serpent()
    worker = _make_worker(objective_ref, run_id, host, port, worker_id)
    worker.run(background=False)


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration at one budget (hpbandster's run, as builtins)."""

    config_id: tuple[int, ...]
    config: dict[str, Any]
    budget: float
    loss: float | None
    info: dict[str, Any]


def run_bohb(space: Any, objective_ref: str, run_dir: Path, run_id: str, min_budget: float, max_budget: float,
             n_iterations: int, eta: float = 3.0, n_workers: int = 2, host: str = "127.0.0.1", port: int = 0,
             seed: int = 0, worker_start_timeout_s: float = 60.0) -> list[Trial]:
    """Run BOHB with ``n_workers`` local worker processes; results are logged (hpbandster's json logger)
    in ``run_dir``. Resuming from a log and remote workers come with the rebuild job (issue 4)."""
    import hpbandster.core.nameserver as hpns
    import hpbandster.core.result as hpres
    from hpbandster.optimizers import BOHB

    register_numpy_with_serpent()
    run_dir.mkdir(parents=True, exist_ok=True)
    space.seed(seed)
    ns = hpns.NameServer(run_id=run_id, host=host, port=port)
    ns_host, ns_port = ns.start()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(objective_ref, run_id, ns_host, ns_port, i), daemon=True)
             for i in range(n_workers)]
    for p in procs:
        p.start()
    logger = hpres.json_result_logger(directory=str(run_dir), overwrite=True)
    bohb = BOHB(configspace=space, run_id=run_id, nameserver=ns_host, nameserver_port=ns_port,
                min_budget=min_budget, max_budget=max_budget, eta=eta, result_logger=logger,
                logger=logging.getLogger("metarec.bohb.master"))
    try:
        _wait_for_workers(bohb, n_workers, worker_start_timeout_s, procs)
        result = bohb.run(n_iterations=n_iterations, min_n_workers=max(1, n_workers))
    finally:
        bohb.shutdown(shutdown_workers=True)
        ns.shutdown()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    return _trials(result)


def _wait_for_workers(bohb: Any, n_workers: int, timeout_s: float, procs: list) -> None:
    """Fail loudly if local workers do not register (instead of hanging)."""
    deadline = time.monotonic() + timeout_s
    while bohb.dispatcher.number_of_workers() < n_workers:
        dead = [p for p in procs if not p.is_alive()]
        if dead:
            raise RuntimeError(f"{len(dead)} BOHB worker process(es) exited (exit code {dead[0].exitcode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {bohb.dispatcher.number_of_workers()} of {n_workers} workers registered "
                               f"within {timeout_s:.0f} s")
        time.sleep(0.5)
        bohb.dispatcher.trigger_discover_worker()  # hpbandster otherwise rediscovers only every 60 s


def _trials(result: Any) -> list[Trial]:
    """hpbandster Result -> Trials with builtin values."""
    configs = result.get_id2config_mapping()
    return [Trial(config_id=tuple(r.config_id), config=to_builtins(configs[r.config_id]["config"]),
                  budget=float(r.budget), loss=None if r.loss is None else float(r.loss),
                  info=to_builtins(r.info or {})) for r in result.get_all_runs()]
