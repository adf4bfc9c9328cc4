"""The candidate pool: Sobol points are legal, deterministic and spread; the pool holds incumbents, the default
and Sobol points once each; second-seed cells cover the asked share; BOHB per group picks the first of each."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from ConfigSpace import Configuration, ForbiddenAndConjunction, ForbiddenEqualsClause

from finetune.config import FinetuneConfig
from finetune.space import build_search_space
from metafeatures.errors import ConfigError
from offline_search.pool import second_seed_cells, sobol_candidates, sobol_configurations
from offline_search.rebuild import RebuildOptions, candidate_pool, searched_datasets
from portfolio.artifact import PortfolioEntry
from tests.fixtures.portfolios import fake_summary


@pytest.fixture(scope="module")
def space():
    space = build_search_space(backbones=("lenet", "mobilenet_v2", "resnet18"), pretrained=("imagenet", "none"))
    # forbid resnet18+imagenet as for an uninstalled file, to exercise the repair
    space.add(ForbiddenAndConjunction(ForbiddenEqualsClause(space["backbone"], "resnet18"),
                                      ForbiddenEqualsClause(space["pretrained"], "imagenet")))
    return space


def test_sobol_points_are_legal_deterministic_and_spread(space):
    points = sobol_configurations(space, 32, seed=1)
    assert points == sobol_configurations(space, 32, seed=1) != sobol_configurations(space, 32, seed=2)
    for p in points:
        Configuration(space, values=p).check_valid_configuration()
        assert ("last_k" in p) == (p["strategy"] == "last_k")
        assert not (p["backbone"] == "lenet" and p.get("last_k", 1) > 3)
        assert not (p["backbone"] == "resnet18" and p["pretrained"] == "imagenet")
    assert {p["backbone"] for p in points} == {"lenet", "mobilenet_v2", "resnet18"}
    assert {p["strategy"] for p in points} == {"frozen", "last_k", "full"}
    lrs = sorted(math.log10(p["lr"]) for p in points)  # log-uniform over 1e-5..0.5, no big gap
    assert lrs[0] < -4 and lrs[-1] > -1 and max(b - a for a, b in zip(lrs, lrs[1:], strict=False)) < 1.0
    with pytest.raises(ConfigError, match="n_sobol"):
        sobol_configurations(space, 0)


def _entry(name: str, **config) -> PortfolioEntry:
    cfg = FinetuneConfig(backbone="lenet", pretrained="none", input_size=16, **config)
    return PortfolioEntry.from_objects(fake_summary(name), cfg, 0.5, 1.0, "epochs")


def test_pool_holds_incumbents_default_and_sobol_once(space):
    entries = [_entry("a"), _entry("b"), _entry("c", lr=0.01)]
    pool = candidate_pool(entries, include_default=True, seed=3, n_sobol=4, space=space, base={"input_size": 16})
    assert [c.source for c in pool] == ["incumbent"] * 3 + ["default"] + ["space_filling"] * 4
    assert [c.id for c in pool[4:]] == ["sobol_000", "sobol_001", "sobol_002", "sobol_003"]
    assert all(c.configuration["seed"] == 3 and c.configuration["input_size"] == 16 for c in pool[4:])
    default = pool[3].config()
    assert (default.backbone, default.pretrained, default.strategy) == ("mobilenet_v2", "imagenet", "full")
    assert [c.source for c in candidate_pool(entries, include_default=False, seed=3)] == ["incumbent"] * 3
    assert [c.id for c in sobol_candidates(space, 2, 3)] == ["sobol_000", "sobol_001"]


def test_second_seed_cells_cover_the_fraction_deterministically():
    cands = [SimpleNamespace(id=f"c{i}") for i in range(7)]
    names = [f"d{j}" for j in range(5)]
    chosen = second_seed_cells(cands, names, 0.1, seed=0)
    assert len(chosen) == math.ceil(0.1 * 35) == 4 and chosen == second_seed_cells(cands, names, 0.1, seed=0)
    assert second_seed_cells(cands, names, 0.0, 0) == set() and len(second_seed_cells(cands, names, 1.0, 0)) == 35
    with pytest.raises(ConfigError, match="second_seed_fraction"):
        second_seed_cells(cands, names, 1.5, 0)


def test_bohb_per_group_searches_the_first_datasets_of_each_group(tmp_path):
    summaries = {n: fake_summary(n).model_copy(update={"group": n.split("__")[0] if "__" in n else None})
                 for n in ("a__v00", "a__v01", "a__v02", "b__v00", "b__v01", "plain")}
    opts = RebuildOptions(collection=tmp_path, out=tmp_path / "pf", search_per_group=1)
    assert searched_datasets(summaries, opts) == ["a__v00", "b__v00", "plain"]
    opts.search_per_group = 2
    assert searched_datasets(summaries, opts) == ["a__v00", "a__v01", "b__v00", "b__v01", "plain"]
    opts.search_per_group = 0
    assert searched_datasets(summaries, opts) == sorted(summaries)
    with pytest.raises(ConfigError, match="search_per_group"):
        RebuildOptions(collection=tmp_path, out=tmp_path / "pf", search_per_group=-1)
