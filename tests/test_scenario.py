"""SearchScenario: validation naming the field, JSON round trip, hash-named run directory."""

from __future__ import annotations

import pytest

from metafeatures.errors import ArtifactError, ConfigError
from offline_search.scenario import SearchScenario


def test_round_trip_and_run_dir(tmp_path):
    scenario = SearchScenario(n_runs=2, n_iterations=3, min_budget=1, max_budget=27, eta=3,
                              backbones=["mobilenet_v2", "lenet"], pretrained=("none",))
    assert scenario.backbones == ("mobilenet_v2", "lenet")
    run_dir = scenario.run_dir(tmp_path)
    assert run_dir.name == f"scenario-{scenario.key()}"
    scenario.save(run_dir)
    assert SearchScenario.load(run_dir) == scenario
    assert SearchScenario.load(run_dir).key() == scenario.key()


def test_key_changes_with_any_setting():
    base = SearchScenario()
    assert base.key() == SearchScenario().key()
    keys = {base.key(), SearchScenario(seed=1).key(), SearchScenario(eta=2).key(),
            SearchScenario(score="final_nauc").key(), SearchScenario(backbones=("lenet",)).key()}
    assert len(keys) == 5


@pytest.mark.parametrize("changes, field", [
    ({"n_runs": 0}, "n_runs"), ({"n_iterations": 0}, "n_iterations"), ({"min_budget": 0}, "min_budget"),
    ({"min_budget": 5, "max_budget": 2}, "max_budget"), ({"eta": 1}, "eta"), ({"budget_kind": "steps"}, "budget_kind"),
    ({"score": "loss"}, "score"), ({"backbones": ()}, "backbones"), ({"backbones": ("nope",)}, "backbone"),
    ({"seed": -1}, "seed"),
])
def test_invalid_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError) as err:
        SearchScenario(**changes)
    assert err.value.field == field


def test_loading_refuses_other_versions_and_unknown_keys(tmp_path):
    data = SearchScenario().to_dict()
    with pytest.raises(ArtifactError, match="format version 2"):
        SearchScenario.from_dict({**data, "format_version": 2})
    with pytest.raises(ConfigError, match="not a scenario setting"):
        SearchScenario.from_dict({**data, "workers": 4})
    (tmp_path / "scenario.json").write_text("{broken")
    with pytest.raises(ArtifactError, match="cannot read"):
        SearchScenario.load(tmp_path)
