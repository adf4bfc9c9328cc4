"""Issue 14 §1, measured: does the portfolio learn from the service's jobs?

A family the portfolio does not know (``metarec datasets derive`` of a demo source absent from it, 3 variants).
Member 3 is recommended for by the shipped portfolio ("before"). Members 1 and 2 are registered in a service
database and fine-tuned as real ``finetune`` jobs by the real worker (``service.worker.Worker``, in this
process) with what the portfolio recommends for them, at the portfolio's cell budget: each finished job
appends its observation to the service's store. Then ``update_portfolio`` (the one entry point the
``portfolio_update`` job and ``metarec portfolio update --add`` call) adds members 1 and 2 as known datasets
through that store, and member 3 is recommended for again ("after"). Regret needs every candidate's score on
member 3: the pool is evaluated on it at the same budget, through the same store.

    nice -n 15 env PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python bench/learn_from_jobs.py \\
        --work data/learn-bench --source gratings

The eight-dataset portfolio ``portfolios/demo8`` (the default when this was measured; ``gratings`` is not among
its datasets, while the meta-collection default knows four gratings variants) has no observation store (its
cells are the legacy ``portfolios/.demo8.work``
ones), so ``--legacy-work`` (default that folder) is copied and passed as the update's work directory: the
72 known cells are read from it, not trained again. Prints a table and writes ``WORK/result.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "data" / "learn-bench")
    p.add_argument("--source", default="gratings", help="a demo dataset the portfolio does not know")
    p.add_argument("--seed", type=int, default=0, help="derivation seed")
    p.add_argument("--portfolio", type=Path, default=REPO / "portfolios" / "demo8",
                   help="a portfolio that does not know --source (default: portfolios/demo8)")
    p.add_argument("--legacy-work", type=Path, default=REPO / "portfolios" / ".demo8.work")
    p.add_argument("--max-images", type=int, default=300)
    return p.parse_args(argv)


def family(args: argparse.Namespace) -> list[Path]:
    """The demo source and its 3 derived variants (members 1, 2, 3 by name)."""
    from metafeatures.demo import generate_demo_collection

    src = args.work / "demo"
    found = [p for p in src.glob(f"{args.source}*") if p.stem == args.source] if src.is_dir() else []
    if not found:
        generate_demo_collection(src, seed=0, progress=False, only=[args.source])
        found = [p for p in src.glob(f"{args.source}*") if p.stem == args.source]
    out = args.work / "service" / "family"
    if not out.is_dir():
        subprocess.run([sys.executable, "-m", "metarec.cli", "datasets", "derive", str(found[0]), "--out",
                        str(out), "--n", "3", "--seed", str(args.seed), "--max-images", str(args.max_images)],
                       check=True, cwd=REPO)
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def recommend(directory: Path, member: Path) -> dict[str, Any]:
    """The portfolio's recommendation for a dataset (the CLI's entry point), reduced to what the table needs."""
    from metafeatures.datasets import open_dataset
    from portfolio.artifact import load_portfolio
    from portfolio.fingerprinting import fingerprinter_for
    from portfolio.recommender import Recommender, SelectionRequest, recommend_dataset

    loaded = load_portfolio(directory)
    rec, _ = recommend_dataset(Recommender(loaded, "mlp"), fingerprinter_for(loaded), open_dataset(member),
                               SelectionRequest(), n_samples=256, seed=0)
    return {"portfolio": loaded.version, "candidate": rec.candidates[0].id, "configuration": rec.configuration,
            "best_match": rec.best_match, "novelty": rec.novelty, "fallback": rec.fallback.used,
            "neighbors": [(n.dataset, round(n.score, 3)) for n in rec.neighbors[:3]], "policy": rec.policy}


def run_jobs(settings: Any, members: list[Path], source: Path, budget: float) -> list[dict[str, Any]]:
    """Register the members and fine-tune each with the portfolio's recommendation, as worker jobs."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import summarize
    from service import queue
    from service.db import DatasetRow, JobRow, make_engine, new_id, session_factory
    from service.jobs import relative_to_root
    from service.worker import Worker

    factory = session_factory(make_engine(settings.db_url))
    out = []
    for member in members:
        summary = summarize(open_dataset(member))
        row = DatasetRow(id=new_id("ds"), name=member.name, source="path", path=str(member),
                         content_hash=summary.content_hash, summary=summary.model_dump(mode="json"))
        with factory.begin() as session:
            session.add(row)
        rec = recommend(source, member)
        job = queue.enqueue(factory, "finetune", {"configuration": rec["configuration"], "budget_s": budget,
                                                  "dataset_name": member.name,
                                                  "dataset_path": relative_to_root(member, settings.root)}, row.id)
        Worker(settings, "cpu", factory=factory).run(once=True)
        with factory() as session:
            done = session.get(JobRow, job.id)
        assert done is not None
        out.append({"member": member.name, "job": job.id, "status": done.status, "alc": done.alc,
                    "candidate": rec["candidate"], "observation": (done.result or {}).get("observation")})
    return out


def pool_scores(directory: Path, member: Path, store: Path) -> dict[str, float]:
    """ALC of every candidate of the portfolio on ``member`` at the portfolio's cell budget (through the store)."""
    from metafeatures.datasets import open_dataset
    from metafeatures.summary import summarize
    from offline_search.rebuild import RebuildOptions, performance_data
    from offline_search.scenario import SearchScenario
    from portfolio.artifact import load_portfolio

    loaded = load_portfolio(directory)
    ds = open_dataset(member)
    summary = summarize(ds)
    opts = RebuildOptions(collection=member.parent, out=directory.parent / "pool-on-member3",
                          scenario=SearchScenario.from_dict(loaded.portfolio.provenance["scenario"]), store=store,
                          on_progress=lambda m: print(f"  {m}", flush=True))
    opts.work().mkdir(parents=True, exist_ok=True)
    data = performance_data({c.id: c.configuration for c in loaded.candidates}, {member.name: ds}, opts,
                            {member.name: (summary.content_hash, summary.group or member.name)})
    column = data.matrix.scores[:, 0]
    return {c.id: float(column[i]) for i, c in enumerate(loaded.candidates)}


def regret(scores: dict[str, float], chosen: str) -> dict[str, float]:
    """Absolute and normalised regret of ``chosen`` on one dataset: (oracle − chosen) and that over (oracle − worst)."""
    values = np.array([v for v in scores.values() if np.isfinite(v)])
    oracle, worst = float(values.max()), float(values.min())
    got = scores.get(chosen, float("nan"))
    got = got if np.isfinite(got) else worst
    return {"alc": round(got, 4), "oracle": round(oracle, 4), "regret": round(oracle - got, 4),
            "normalized_regret": round((oracle - got) / (oracle - worst), 4) if oracle > worst else 0.0}


def main(argv: list[str] | None = None) -> int:
    from offline_search.update import update_portfolio
    from portfolio.artifact import load_portfolio
    from service.settings import Settings

    args = parse_args(argv)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    source = args.portfolio.resolve()
    start = time.perf_counter()
    members = family(args)
    print(f"family: {[m.name for m in members]}", flush=True)
    settings = Settings(data_root=args.work / "service", portfolio_dir=source,
                        api_key="bench-user-key-0123456789", admin_api_key="bench-admin-key-0123456789")
    budget = float(load_portfolio(source).portfolio.provenance["scenario"]["max_budget"])
    before = recommend(source, members[2])
    print(f"before: {before}", flush=True)
    jobs = run_jobs(settings, members[:2], source, budget)
    print(f"jobs: {jobs}", flush=True)
    work = args.work / "update-work"
    if not work.exists() and args.legacy_work.is_dir():
        shutil.copytree(args.legacy_work, work)
    t_update = time.perf_counter()
    new = update_portfolio(source, args.work / "portfolio-learned", work_dir=work, overwrite=True,
                           added={m.name: m for m in members[:2]}, store=settings.store_path,
                           on_progress=lambda m: print(f"  update: {m}", flush=True))
    update_s = time.perf_counter() - t_update
    after = recommend(new, members[2])
    print(f"after: {after}", flush=True)
    scores = pool_scores(new, members[2], settings.store_path)
    result = {"source": args.source, "seed": args.seed, "members": [m.name for m in members], "budget_s": budget,
              "jobs": jobs, "before": {**before, **regret(scores, before["candidate"])},
              "after": {**after, **regret(scores, after["candidate"])}, "pool_scores_member3": scores,
              "update_s": round(update_s, 1), "total_s": round(time.perf_counter() - start, 1)}
    (args.work / "result.json").write_text(json.dumps(result, indent=1, default=str))
    print("| portfolio | recommended | best match | novelty | fallback | ALC on member 3 | oracle | regret | "
          "normalised regret |\n|---|---|---|---:|---|---:|---:|---:|---:|")
    for what in ("before", "after"):
        r = result[what]
        novelty = "n/a" if r["novelty"] is None else f"{r['novelty']:.3f}"
        print(f"| {what} ({r['portfolio']}) | {r['candidate']} | {r['best_match']} | {novelty} | {r['fallback']} | "
              f"{r['alc']:.4f} | {r['oracle']:.4f} | {r['regret']:.4f} | {r['normalized_regret']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
