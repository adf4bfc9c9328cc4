"""Exploration (issue 12 §6): mix three sources of neighbour weights and choose the mix nested, leave-one-group-out.

Sources: the fingerprint matcher's neighbours (top-k of its ranking of a batch), the meta-feature neighbours
(top-k by standardised distance of log classes, log images, log resolution, channels) and the uniform prior
(all known datasets equally: the single best on the normalised scale). Weights w = a·fp + b·meta + c·uniform
on a simplex grid (step 1/4) × every (k, weighting) of each; per held-out group the mix is chosen on the other
groups only. Not part of the harness: it answers whether combining the evidence beats its parts.

    .venv/bin/python bench/explore_evidence_mix.py --matcher mlp --size 8 --budgets 1200,60,10

The matcher's evidence (14 refits, ~10 min here) is stored in ``runs/evidence_mix_MATCHER.pkl`` and reused.
"""

from __future__ import annotations

import argparse
import itertools
import os
import pickle
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from portfolio.artifact import LoadedPortfolio, load_portfolio  # noqa: E402
from portfolio.eval_data import portfolio_fingerprints  # noqa: E402
from portfolio.evaluation import Evidence, Problem, collect_evidence, meta_features  # noqa: E402
from portfolio.fingerprinting import fingerprinter_for  # noqa: E402
from portfolio.policies import WEIGHTINGS, NeighborParams, neighbor_weights, normalise_columns  # noqa: E402


def collect(loaded: LoadedPortfolio, matcher: str, path: Path) -> dict:
    """Leave-one-group-out evidence of ``matcher`` at batch sizes 8 and 64 (20 batches, seed 0), pickled."""
    n = int(loaded.portfolio.provenance.get("fingerprint_sampling", {}).get("n_samples", 512))
    fps = portfolio_fingerprints(loaded, lambda: fingerprinter_for(loaded, device="cpu"), n_samples=n, seed=0,
                                 say=print)
    groups = {e.dataset: str(e.summary.get("group") or e.dataset) for e in loaded.portfolio.entries}
    problem = Problem.build(loaded.performance, loaded.candidates, loaded.portfolio.reduced_portfolio, groups, None)
    out = {"groups": groups, "summaries": {e.dataset: e.summary for e in loaded.portfolio.entries},
           matcher: collect_evidence(problem, fps, matcher, loaded.matchers[matcher].get_params(), [8, 64], 20, 0,
                                     True, print)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portfolio", type=Path, default=ROOT / "portfolios" / "demo")
    ap.add_argument("--matcher", default="mlp")
    ap.add_argument("--size", type=int, default=8, choices=(8, 64))
    ap.add_argument("--budgets", default="1200,60,10")
    a = ap.parse_args()
    loaded = load_portfolio(a.portfolio)
    path = ROOT / "runs" / f"evidence_mix_{a.matcher}.pkl"
    ev_all = pickle.loads(path.read_bytes()) if path.exists() else collect(loaded, a.matcher, path)
    analyse(loaded, ev_all, a.matcher, a.size, [float(b) for b in a.budgets.split(",")])


def analyse(loaded: LoadedPortfolio, ev_all: dict, matcher: str, size: int, budgets: list[float]) -> None:
    """Print the nested regret of each mix family against the single best, per budget."""
    groups = ev_all["groups"]
    feats = {d: meta_features(s) for d, s in ev_all["summaries"].items()}
    ev = ev_all[matcher][size]
    params = [NeighborParams(k=k, weighting=w) for w in WEIGHTINGS for k in (1, 2, 3, 5, 8, 13, 21)]
    simplex = np.array([(a / 4, b / 4, (4 - a - b) / 4) for a in range(5) for b in range(5 - a)])
    combos = np.array(list(itertools.product(range(len(params)), range(len(params)), range(len(simplex)))))
    mix = simplex[combos[:, 2]]
    for budget in budgets:
        pb = Problem.build(loaded.performance, loaded.candidates, loaded.portfolio.reduced_portfolio, groups, budget)
        names = list(pb.datasets)
        n = len(names)
        table = np.zeros((n, len(combos)))  # regret of every mix on every held-out dataset
        sb = np.zeros(n)
        for t in range(n):
            table[t], sb[t] = regrets_of_target(pb, t, ev, feats, params, simplex)
        gid = np.array([groups[d] for d in names])

        def nested(mask: np.ndarray, gid: np.ndarray = gid, table: np.ndarray = table) -> np.ndarray:
            cand = np.where(mask)[0]
            return np.array([table[t, cand[np.argmin(table[np.ix_(gid != gid[t], cand)].mean(0))]]
                             for t in range(len(gid))])

        small_k = np.isin(combos[:, 0], [i for i, p in enumerate(params) if p.k <= 8])
        families = {
            "fp only (k <= 8)": (mix[:, 0] == 1) & small_k & (combos[:, 1] == 0),
            "fp only (k <= 21)": (mix[:, 0] == 1) & (combos[:, 1] == 0),
            "meta only": (mix[:, 1] == 1) & (combos[:, 0] == 0),
            "fp + uniform": (mix[:, 1] == 0) & (combos[:, 1] == 0),
            "meta + uniform": (mix[:, 0] == 0) & (combos[:, 0] == 0),
            "fp + meta": mix[:, 2] == 0,
            "all three": np.ones(len(combos), bool),
        }
        print(f"T = {budget:g} s, {matcher}@{size}: single best {sb.mean():.3f}")
        for name, mask in families.items():
            r = nested(mask)
            beats = np.mean([r[gid == g].mean() < sb[gid == g].mean() for g in sorted(set(gid))])
            print(f"  {name:18s} nested regret {r.mean():.3f} ({r.mean() / sb.mean():.2f}x single best), "
                  f"beats it on {beats:.0%} of groups; best single mix in-sample {table[:, mask].mean(0).min():.3f}")
        meta = np.where(families["meta only"])[0]
        chosen = Counter(params[combos[meta[np.argmin(table[np.ix_(gid != gid[t], meta)].mean(0))]][1]]
                         for t in range(n))
        print(f"  meta only: (k, weighting) chosen {dict(chosen)}")


def regrets_of_target(pb: Problem, t: int, ev: Evidence, feats: dict, params: list, simplex: np.ndarray
                      ) -> tuple[np.ndarray, float]:
    """Regret on held-out ``t`` of every (fp params, meta params, mix), and the single best's regret."""
    names = list(pb.datasets)
    hidden = pb.hidden(t, True)
    rows, cols = pb.rows(hidden), pb.columns(hidden)
    norm = normalise_columns(pb.scores, rows)[np.ix_(rows, cols)]  # rows x known columns
    at = {c: i for i, c in enumerate(cols)}
    batches = ev.rankings[t]
    wf = np.zeros((len(params), len(batches), len(cols)))
    for p, prm in enumerate(params):
        for b, ranking in enumerate(batches):
            for c, w in neighbor_weights(ranking, prm).items():
                wf[p, b, at[c]] = w
    train = np.stack([feats[names[j]] for j in cols])
    std = train.std(0)
    std[std < 1e-12] = 1.0
    dist = np.linalg.norm((train - feats[names[t]]) / std, axis=1)
    meta_ranking = [(cols[i], 1.0 / (1.0 + dist[i])) for i in np.argsort(dist, kind="stable")]
    wm = np.zeros((len(params), len(cols)))
    for p, prm in enumerate(params):
        for c, w in neighbor_weights(meta_ranking, prm).items():
            wm[p, at[c]] = w
    uniform, fp, meta = norm.mean(1), wf @ norm.T, wm @ norm.T  # rows; P x B x rows; P x rows
    column = pb.scores[rows, t]
    best, worst = column.max(), column.min()
    span = best - worst if best - worst > 1e-12 else np.inf
    single = int(np.argmax(pb.scores[np.ix_(rows, cols)].mean(1)))
    out = []
    for p in range(len(params)):
        pred = (simplex[None, :, 0, None, None] * fp[p][None, None] + simplex[None, :, 1, None, None]
                * meta[:, None, None, :] + simplex[None, :, 2, None, None] * uniform[None, None, None, :])
        picked = np.asarray(rows)[np.argmax(pred, axis=-1)]  # meta params x mix x batch (ties: lower row)
        out.append(((best - pb.scores[picked, t].mean(-1)) / span).reshape(-1))
    return np.concatenate(out), float((best - column[single]) / span)


if __name__ == "__main__":
    main()
