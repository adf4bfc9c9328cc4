"""The video demo datasets: deterministic, readable by metarec, both windows and layouts, CLI flag."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from metafeatures.datasets import open_collection
from metafeatures.demo_video import README_NAME, VIDEO_DEMO_DATASETS, generate_video_demo
from metafeatures.errors import OutputExistsError
from metafeatures.summary import summarize


@pytest.fixture(scope="module")
def video_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vdemo")
    generate_video_demo(out, seed=0, progress=False)
    return out


def _tree_hash(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def test_video_demo_datasets_open_as_video_with_the_expected_windows(video_demo):
    datasets = open_collection(video_demo)
    assert sorted(datasets) == sorted(VIDEO_DEMO_DATASETS)
    summaries = {name: summarize(ds) for name, ds in datasets.items()}
    assert all(s.modality == "video" and s.skipped == 0 and s.n_classes >= 3 for s in summaries.values())
    windows = {name: s.video.window for name, s in summaries.items() if s.video is not None}
    assert windows == {"video_motion": "4x1/k3", "video_flicker": "8x4/k7", "video_drift": "8x4/k7",
                       "video_shapes": "4x1/k3"}
    assert summaries["video_shapes"].target_size == (80, 80)  # 96x96 frames exceed 90x90
    assert summaries["video_flicker"].video.fps_mean == 12.0 and summaries["video_motion"].video.fps_mean is None
    assert "video_drift" in (video_demo / README_NAME).read_text()


def test_video_demo_is_deterministic_and_refuses_to_overwrite(video_demo, tmp_path):
    generate_video_demo(tmp_path, seed=0, progress=False, only=["video_drift"])
    assert _tree_hash(tmp_path / "video_drift") == _tree_hash(video_demo / "video_drift")
    with pytest.raises(OutputExistsError):
        generate_video_demo(tmp_path, seed=0, progress=False, only=["video_drift"])


@pytest.mark.slow
def test_cli_demo_video_flag_and_video_summary(tmp_path, capsys):
    from metarec.cli import main

    assert main(["datasets", "demo", "--video", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(VIDEO_DEMO_DATASETS)
    assert main(["datasets", "summary", str(tmp_path / "video_motion")]) == 0
    text = capsys.readouterr().out
    assert "80 clips" in text and "frames per clip 24" in text and "fps unknown" in text
