"""The only module that imports hpbandster: nameserver, BOHB master and worker processes.

hpbandster 0.7.4 (unmaintained since 2019) talks through Pyro4, whose serpent serializer writes numpy
scalars as ``np.float64(3.0)``, which the other side cannot parse: a run then hangs silently. Every
process that takes part registers numpy's scalar types with serpent first
(:func:`register_numpy_with_serpent`), configurations are cast to builtins at the boundary, and the
nameserver listens on 127.0.0.1 with an OS-chosen port unless a host/port is given.
"""

from __future__ import annotations

import importlib
import json
import logging
import multiprocessing as mp
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metafeatures.errors import ArtifactError, MetarecError

Objective = Callable[..., dict[str, Any]]
# Loss reported for an evaluation that raised: worse than any score in [-1, 1] (BOHB's KDE needs finite losses).
FAILED_LOSS = 2.0


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


def _make_worker(objective_ref: str, run_id: str, host: str, port: int, worker_id: int,
                 objective_kwargs: dict[str, Any]) -> Any:
    """An hpbandster Worker whose compute() calls the named objective and never raises."""
    from hpbandster.core.worker import Worker

    objective = resolve(objective_ref)

    class ObjectiveWorker(Worker):  # type: ignore[misc]
        """Calls the objective; a failure becomes a bad result with the reason, never a crashed run."""

        def compute(self, config: dict, budget: float, **kwargs: Any) -> dict[str, Any]:
            try:
                out = objective(to_builtins(config), float(budget), **objective_kwargs)
                return {"loss": float(out["loss"]), "info": to_builtins(out.get("info", {}))}
            except Exception as exc:  # noqa: BLE001 - reported to BOHB, see docstring
                return {"loss": FAILED_LOSS, "info": {"error": f"{type(exc).__name__}: {exc}"}}

    return ObjectiveWorker(run_id=run_id, nameserver=host, nameserver_port=port, id=worker_id,
                           logger=logging.getLogger(f"metarec.bohb.worker{worker_id}"))


WARM_PRELOAD = ("offline_search.objective",)  # what a warm worker imports once (torch, the trainer, the data code)


def _warm_main(preload: Sequence[str], parent: int, tasks: Any, done: Any) -> None:
    """A warm worker process: import ``preload`` once, then serve one BOHB session after another (each task is
    :func:`worker_main`'s arguments; ``None`` ends it); exit when the parent process is gone."""
    for module in preload:
        importlib.import_module(module)
    done.put("ready")
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the driver was killed: do not wait for ever
                return
            continue
        if task is None:
            return
        try:
            worker_main(*task)
        except Exception:  # noqa: BLE001 - one session's failure is logged; the process serves the next one
            logging.getLogger("metarec.bohb").exception("warm worker: the session of run %s failed", task[1])
        done.put("idle")


@dataclass
class _Warm:
    """One warm worker process and its two queues."""

    proc: Any
    tasks: Any
    done: Any
    busy: bool = False


@dataclass
class WarmWorkers:
    """Worker processes kept alive between BOHB sessions. A rebuild runs one search per dataset (and one per
    tuned matcher); a freshly spawned worker spends seconds importing torch before it can register, for every
    search. Warm workers pay that once per rebuild. Used through :func:`warm_workers`."""

    preload: Sequence[str] = WARM_PRELOAD
    _workers: list[_Warm] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, n: int) -> list[_Warm]:
        """``n`` idle workers (spawning what is missing), marked busy."""
        ctx = mp.get_context("spawn")
        with self._lock:
            self._workers = [w for w in self._workers if w.proc.is_alive()]
            chosen = [w for w in self._workers if not w.busy][:n]
            while len(chosen) < n:
                tasks, done = ctx.Queue(), ctx.Queue()
                proc = ctx.Process(target=_warm_main, args=(tuple(self.preload), os.getpid(), tasks, done), daemon=True)
                proc.start()
                worker = _Warm(proc, tasks, done)
                self._workers.append(worker)
                chosen.append(worker)
            for worker in chosen:
                worker.busy = True
            return chosen

    def release(self, workers: list[_Warm], timeout_s: float = 10.0) -> None:
        """Wait until each worker has finished its session; one that does not is terminated (and replaced later)."""
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            finished = False
            while worker.proc.is_alive():
                try:
                    finished = worker.done.get(timeout=max(0.05, deadline - time.monotonic())) == "idle"
                except queue.Empty:
                    break
                if finished:
                    break
            if not finished and worker.proc.is_alive():
                worker.proc.terminate()
                worker.proc.join(timeout=5)
            with self._lock:
                worker.busy = False

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker.proc.is_alive():
                worker.tasks.put(None)
        for worker in workers:
            worker.proc.join(timeout=10)
            if worker.proc.is_alive():
                worker.proc.terminate()


_WARM: WarmWorkers | None = None


@contextmanager
def warm_workers(preload: Sequence[str] = WARM_PRELOAD) -> Iterator[WarmWorkers]:
    """Within the block, every :func:`run_bohb` with worker processes uses warm ones (nested blocks share the
    outer pool); they stop at the end of the outermost block."""
    global _WARM
    if _WARM is not None:
        yield _WARM
        return
    pool = _WARM = WarmWorkers(preload)
    try:
        yield pool
    finally:
        _WARM = None
        pool.close()


NAMESERVER_CHECK_S = 5.0  # how often an idle worker checks that its run's nameserver still exists


def worker_main(objective_ref: str, run_id: str, host: str, port: int, worker_id: int,
                objective_kwargs: dict[str, Any] | None = None) -> None:
    """Entry point of a worker process: register serpent types, join the nameserver, serve until shutdown."""
    import threading

    import Pyro4.errors

    register_numpy_with_serpent()
    worker = _make_worker(objective_ref, run_id, host, port, worker_id, objective_kwargs or {})
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch_nameserver, args=(worker, host, port, stop), daemon=True)
    watchdog.start()
    try:
        worker.run(background=False)
    except Pyro4.errors.NamingError:  # the nameserver vanished while the worker (un)registered: the run is over
        logging.getLogger("metarec.bohb").info("worker %d: the nameserver of run %s is gone", worker_id, run_id)
    finally:
        stop.set()


def _watch_nameserver(worker: Any, host: str, port: int, stop: Any, misses_allowed: int = 2) -> None:
    """Shut the worker down once its run's nameserver is gone: the master shuts down only the workers its
    dispatcher has discovered, so a worker that registered during the master's last seconds would wait forever."""
    import Pyro4
    import Pyro4.errors

    misses = 0
    while not stop.wait(NAMESERVER_CHECK_S):
        try:
            with Pyro4.locateNS(host=host, port=port):
                misses = 0
        except Pyro4.errors.NamingError:
            misses += 1
            if misses > misses_allowed and getattr(worker, "pyro_daemon", None) is not None:
                logging.getLogger("metarec.bohb").info("nameserver %s:%s is gone: the run is over", host, port)
                worker.shutdown()
                return


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration at one budget (hpbandster's run, as builtins)."""

    config_id: tuple[int, ...]
    config: dict[str, Any]
    budget: float
    loss: float | None
    info: dict[str, Any]
    finished: float | None = None  # seconds since the session started (hpbandster's time stamp)


DONE_NAME = "done.json"
TASK_NAME = "worker.json"


def write_task(path: Path, host: str, port: int, run_id: str, objective_ref: str,
               objective_kwargs: dict[str, Any]) -> Path:
    """What a remote worker needs to join a run: nameserver address, run id, objective and its arguments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nameserver": host, "port": port, "run_id": run_id, "objective": objective_ref,
                                "kwargs": to_builtins(objective_kwargs)}, indent=2))
    return path


def run_worker_from_task(task: Path, nameserver: str | None = None, run_id: str | None = None,
                         worker_id: int = 0) -> None:
    """Join a running BOHB master described by a task file (``--nameserver HOST:PORT`` and ``--run-id``
    override what the file says); serve until the master shuts its workers down."""
    data = json.loads(task.read_text())
    host, port = data["nameserver"], int(data["port"])
    if nameserver:
        host, _, port_text = nameserver.rpartition(":")
        port = int(port_text)
    try:
        worker_main(data["objective"], run_id or data["run_id"], host, port, worker_id, data["kwargs"])
    except RuntimeError as exc:
        if "No nameserver found" not in str(exc):
            raise
        if _finished_meanwhile(task.parent / DONE_NAME):  # a late worker: the others did all the work
            logging.getLogger("metarec.bohb").info("run %s finished before this worker joined", data["run_id"])
            return
        raise MetarecError(f"no BOHB nameserver at {host}:{port}: is the master of run {data['run_id']!r} "
                           "running?") from None


def _finished_meanwhile(done: Path, wait_s: float = 15.0) -> bool:
    """True once the master has written ``done.json`` (it does so right after shutting the nameserver down)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if done.is_file():
            return True
        time.sleep(0.5)
    return done.is_file()


def run_bohb(space: Any, objective_ref: str, run_dir: Path, run_id: str, min_budget: float, max_budget: float,
             n_iterations: int, eta: float = 3.0, n_workers: int = 2, host: str = "127.0.0.1", port: int = 0,
             seed: int = 0, objective_kwargs: dict[str, Any] | None = None, resume: bool = False,
             overwrite: bool = False, worker_start_timeout_s: float = 60.0, optimizer: str = "bohb",
             worker_threads: bool = False) -> list[Trial]:
    """Run ``n_iterations`` BOHB iterations with ``n_workers`` local worker processes; return every trial.

    With ``worker_threads`` the workers are threads of this process instead (inside a Ray task, which is
    already a worker process with everything imported: a spawned process would import torch once more).

    Each session logs with hpbandster's json logger into ``run_dir/part-K``. A finished run (``done.json``)
    is a no-op unless ``overwrite``; an unfinished one needs ``resume`` (continue: earlier evaluations
    warm-start the model and completed iterations are not run again) or ``overwrite`` (start afresh).
    """
    import hpbandster.core.nameserver as hpns
    import hpbandster.core.result as hpres
    from hpbandster.optimizers import BOHB, RandomSearch

    if optimizer not in ("bohb", "random"):
        raise ValueError(f"optimizer must be 'bohb' or 'random', got {optimizer!r}")
    if prepare_run(run_dir, resume, overwrite):
        return read_trials(run_dir)
    parts = _parts(run_dir)
    previous, done_iterations = _previous_result(parts, max_budget, hpres) if parts else (None, 0)
    remaining = n_iterations - done_iterations
    register_numpy_with_serpent()
    part = run_dir / f"part-{len(parts)}"
    part.mkdir(parents=True, exist_ok=True)
    if remaining > 0:
        _run_session(space, objective_ref, objective_kwargs or {}, part, run_id, min_budget, max_budget, remaining,
                     eta, n_workers, host, port, seed + len(parts), previous, worker_start_timeout_s, hpns, hpres,
                     BOHB if optimizer == "bohb" else RandomSearch, worker_threads)
    mark_done(run_dir, n_iterations)
    return read_trials(run_dir)


def _parts(run_dir: Path) -> list[Path]:
    """The sessions (``part-K``) of a run directory, in order."""
    return sorted(run_dir.glob("part-*"), key=lambda p: int(p.name.split("-")[1]))


def prepare_run(run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Apply ``resume``/``overwrite`` to a run directory; True when the run is already finished (read it back)."""
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
        return False
    if (run_dir / DONE_NAME).is_file():
        return True
    if _parts(run_dir) and not resume:
        raise ArtifactError(f"{run_dir} holds an unfinished BOHB run: resume it or overwrite it")
    return False


def mark_done(run_dir: Path, n_iterations: int) -> None:
    """Record that every iteration of the run is logged (a later call reads the logs back)."""
    (run_dir / DONE_NAME).write_text(json.dumps({"n_iterations": n_iterations, "parts": len(_parts(run_dir))}))


LOG_FILES = ("configs.json", "results.json")
RunLogs = dict[str, dict[str, str]]  # part name -> {log file name: its text}


def export_run(run_dir: Path) -> RunLogs:
    """The hpbandster logs of every session of a run, as text: what a search on another machine is resumed
    from and sends back (the run directory itself stays with the driver)."""
    return {p.name: {n: (p / n).read_text() for n in LOG_FILES if (p / n).is_file()} for p in _parts(run_dir)}


def import_run(run_dir: Path, logs: RunLogs) -> None:
    """Write logs from :func:`export_run` into ``run_dir`` (only ``part-K`` folders and the two log files)."""
    for part, files in logs.items():
        head, _, number = part.partition("-")
        if head != "part" or not number.isdigit() or set(files) - set(LOG_FILES):
            raise ArtifactError(f"not a BOHB run log: {part!r} with files {sorted(files)}")
        (run_dir / part).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (run_dir / part / name).write_text(text)


def _run_session(space: Any, objective_ref: str, objective_kwargs: dict[str, Any], part: Path, run_id: str,
                 min_budget: float, max_budget: float, n_iterations: int, eta: float, n_workers: int, host: str,
                 port: int, seed: int, previous: Any, timeout_s: float, hpns: Any, hpres: Any, bohb_cls: Any,
                 worker_threads: bool = False) -> None:
    """One master session: nameserver, spawned workers (or worker threads), BOHB logging into ``part``."""
    space.seed(seed)
    np.random.seed(seed)  # hpbandster's KDE sampling draws from numpy's global generator
    ns = hpns.NameServer(run_id=run_id, host=host, port=port)
    ns_host, ns_port = ns.start()
    write_task(part.parent / TASK_NAME, ns_host, ns_port, run_id, objective_ref, objective_kwargs)
    logging.getLogger("metarec.bohb").info("BOHB nameserver %s:%s run %s; remote workers: metarec search worker "
                                           "--task %s", ns_host, ns_port, run_id, part.parent / TASK_NAME)
    ctx = mp.get_context("spawn")
    pool = None if worker_threads else _WARM
    warm = pool.acquire(n_workers) if pool is not None else []
    for i, worker in enumerate(warm):
        worker.tasks.put((objective_ref, run_id, ns_host, ns_port, i, objective_kwargs))
    spawned = [] if worker_threads or pool is not None else [
        ctx.Process(target=worker_main, args=(objective_ref, run_id, ns_host, ns_port, i, objective_kwargs),
                    daemon=True) for i in range(n_workers)]
    procs = [w.proc for w in warm] + spawned
    threads = [_make_worker(objective_ref, run_id, ns_host, ns_port, i, objective_kwargs)
               for i in range(n_workers)] if worker_threads else []
    for proc in spawned:
        proc.start()
    for worker in threads:
        worker.run(background=True)
    bohb = None
    try:
        logger = _builtin_logger(hpres)(directory=str(part), overwrite=True)
        bohb = bohb_cls(configspace=space, run_id=run_id, nameserver=ns_host, nameserver_port=ns_port,
                        min_budget=min_budget, max_budget=max_budget, eta=eta, result_logger=logger,
                        previous_result=previous, logger=logging.getLogger("metarec.bohb.master"))
        if n_workers:
            _wait_for_workers(bohb, n_workers, timeout_s, procs)
        bohb.run(n_iterations=n_iterations, min_n_workers=max(1, n_workers))
    finally:
        if bohb is not None:
            bohb.shutdown(shutdown_workers=True)
        ns.shutdown()
        if pool is not None:
            pool.release(warm)
        for proc in spawned:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        for worker in threads:
            if worker.thread is not None and worker.thread.is_alive():
                worker.shutdown()


def _builtin_logger(hpres: Any) -> Any:
    """hpbandster's json logger, with configs cast to builtins (ConfigSpace hands out numpy scalars, which
    json cannot write; the unpatched logger then kills the master thread and the run hangs)."""

    class BuiltinJsonLogger(hpres.json_result_logger):  # type: ignore[misc,name-defined]
        def new_config(self, config_id: Any, config: Any, config_info: Any) -> None:
            super().new_config(tuple(to_builtins(config_id)), to_builtins(config), to_builtins(config_info))

    return BuiltinJsonLogger


def _log_lines(part: Path, name: str) -> list[Any]:
    """JSON lines of one hpbandster log file (a missing file is an empty log)."""
    path = part / name
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _merged_logs(run_dir: Path) -> tuple[list[Any], list[Any]]:
    """Configs and results of every part, iteration numbers shifted so that parts do not collide."""
    configs: list[Any] = []
    results: list[Any] = []
    offset = 0
    for part in _parts(run_dir):
        part_configs = _log_lines(part, "configs.json")
        for cid, config, info in part_configs:
            configs.append([[cid[0] + offset, *cid[1:]], config, info])
        for cid, budget, stamps, result, exc in _log_lines(part, "results.json"):
            results.append([[cid[0] + offset, *cid[1:]], budget, stamps, result, exc])
        offset += 1 + max((c[0][0] for c in part_configs), default=-1)
    return configs, results


def _previous_result(parts: list[Path], max_budget: float, hpres: Any) -> tuple[Any, int]:
    """hpbandster Result of all earlier parts (for warm-starting) and how many iterations reached max_budget."""
    configs, results = _merged_logs(parts[0].parent)
    if not results:
        return None, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, rows in (("configs.json", configs), ("results.json", results)):
            Path(tmp, name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        previous = hpres.logged_results_to_HBS_result(tmp)
    done = {tuple(r[0])[0] for r in results if r[1] >= max_budget and r[3] is not None}
    return previous, len(done)


def read_trials(run_dir: Path) -> list[Trial]:
    """Every logged evaluation of a run directory (all parts), as builtins."""
    configs, results = _merged_logs(run_dir)
    by_id = {tuple(cid): config for cid, config, _ in configs}
    return [Trial(config_id=tuple(cid), config=to_builtins(by_id[tuple(cid)]), budget=float(budget),
                  loss=None if result is None else float(result["loss"]),
                  info=to_builtins((result or {}).get("info") or {"error": str(exc)}),
                  finished=(stamps or {}).get("finished"))
            for cid, budget, stamps, result, exc in results]


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


def bohb_cost(min_budget: float, max_budget: float, eta: float, n_iterations: int) -> float:
    """What ``n_iterations`` of BOHB (or hyperband) evaluate, in full-budget evaluations: hpbandster's
    successive-halving schedule, recomputed (so that progress can weigh a search against a matrix cell)."""
    n_rungs = -int(np.log(min_budget / max_budget) / np.log(eta)) + 1
    budgets = max_budget * np.power(eta, -np.linspace(n_rungs - 1, 0, n_rungs))
    total = 0.0
    for iteration in range(n_iterations):
        s = n_rungs - 1 - (iteration % n_rungs)
        n0 = int(np.floor(n_rungs / (s + 1)) * eta**s)
        counts = [max(int(n0 * eta ** (-i)), 1) for i in range(s + 1)]
        total += sum(c * b for c, b in zip(counts, budgets[-s - 1:], strict=True))
    return total / max_budget
