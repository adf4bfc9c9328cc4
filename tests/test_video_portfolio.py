"""A video dataset and an image dataset in one portfolio: searched, matched and recommended across modalities."""

from __future__ import annotations

import pytest

from metafeatures.datasets import open_dataset
from metafeatures.fingerprint import Fingerprinter
from metafeatures.summary import content_hash
from offline_search.rebuild import RebuildOptions, rebuild
from offline_search.scenario import SearchScenario
from portfolio.artifact import load_portfolio
from portfolio.recommender import Recommender
from tests.fixtures.factories import make_image_folder
from tests.fixtures.video import make_video_dataset


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_rebuild_with_an_image_and_a_video_dataset(tmp_path):
    col = tmp_path / "col"
    make_image_folder(col / "tinted", {"r": 10, "g": 10, "b": 10}, size=(16, 16))
    make_video_dataset(col / "clips", {"left": 8, "right": 8}, n_frames=10, layout=".mp4")
    scenario = SearchScenario(n_iterations=1, min_budget=1, max_budget=1, backbones=("resnet18",),
                              pretrained=("none",))
    opts = RebuildOptions(collection=col, out=tmp_path / "portfolio", scenario=scenario, n_workers=1,
                          fingerprint_backbone="resnet18", fingerprint_weights="random", fingerprint_resolution=32,
                          n_samples=16, matchers=("mlp",), base_config={"input_size": 16, "head_width": 16},
                          include_default=False)
    loaded = load_portfolio(rebuild(opts))
    entries = {e.dataset: e for e in loaded.portfolio.entries}
    assert entries["clips"].summary["modality"] == "video" and entries["tinted"].summary["modality"] == "image"
    assert entries["clips"].configuration["video_head"] in ("temporal_conv", "average")
    assert "video_head" not in entries["tinted"].configuration
    assert "video_head" in loaded.space.keys() and loaded.matrix.shape == (2, 2)

    fpr = Fingerprinter("resnet18", "random", resolution=32)
    rec = Recommender(loaded, matcher="mlp")
    for name in ("clips", "tinted"):
        ds = open_dataset(col / name)
        features = fpr.fingerprint(ds, content_hash(ds), n_samples=16).features
        assert rec.recommend(features).best_match == name
