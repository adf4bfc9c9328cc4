"""Video datasets: both layouts, bad clips, frame selection at 48/49 frames, both heads, fingerprints, search space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetune.checkpoint import load_checkpoint, model_from_checkpoint
from finetune.config import FinetuneConfig
from finetune.heads import HeadSpec, VideoSpec
from finetune.model import VideoFinetuneModel, build_model
from finetune.space import build_search_space
from finetune.trainer import TrainOptions, finetune
from finetune.video_data import prepare_video
from metafeatures.datasets import open_dataset
from metafeatures.errors import ConfigError, DatasetError, UnreadableClipError
from metafeatures.fingerprint import Fingerprinter, Fingerprints, FingerprintSpec
from metafeatures.summary import summarize
from metafeatures.video import (
    LONG_WINDOW,
    SHORT_WINDOW,
    FrameWindow,
    dataset_window,
    frame_size,
    read_clip,
    select_frames,
    window_for,
    write_video,
)
from tests.fixtures.factories import make_image_folder
from tests.fixtures.video import make_video_dataset, moving_square

LENET = dict(backbone="lenet", pretrained="none", input_size=16, batch_size=4, head_width=16)


@pytest.mark.parametrize("layout", ["frames", ".mp4", ".avi", ".webm"])
def test_both_layouts_open_as_video_and_summarise(tmp_path, layout):
    root = make_video_dataset(tmp_path / "v", {"left": 2, "right": 3}, n_frames=10, size=(16, 24), layout=layout)
    ds = open_dataset(root)
    assert ds.modality == "video" and len(ds) == 5 and ds.classes == ["left", "right"]
    s = summarize(ds)
    assert (s.modality, s.n_items, s.class_counts) == ("video", 5, {"left": 2, "right": 3})
    assert (s.mean_height, s.mean_width) == (16, 24)
    assert s.video is not None and (s.video.frames_min, s.video.frames_max, s.video.frames_mean) == (10, 10, 10)
    assert s.video.window == "4x1/k3"
    assert (s.video.fps_mean is None) == (layout == "frames")
    assert "video" in s.model_dump() and "video" not in summarize(open_dataset(
        make_image_folder(tmp_path / "img", {"a": 2, "b": 2}))).model_dump()


def test_decoded_video_matches_the_encoded_frames(tmp_path):
    frames = moving_square(9, (32, 32))
    clip = read_clip(write_video(tmp_path / "c.avi", frames, fps=25))
    assert clip.frames.shape == frames.shape and clip.fps == 25
    # lossy codec (noise and chroma suffer), but the same pictures: the square is where it was drawn
    def column(x):
        return np.array([np.nonzero(f[..., 0] > 128)[1].mean() for f in x])
    assert np.abs(column(clip.frames) - column(frames)).max() < 1


def test_bad_clips_are_skipped_with_a_report_or_raise_when_strict(tmp_path):
    root = make_video_dataset(tmp_path / "v", {"a": 2, "b": 2}, n_frames=6, layout=".mp4")
    (root / "a" / "broken.mp4").write_bytes(b"not a video at all")
    (root / "b" / "empty_clip").mkdir()
    mixed = root / "b" / "mixed_clip"
    mixed.mkdir()
    from PIL import Image
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(mixed / "1.png")
    ds = open_dataset(root)
    s = summarize(ds)
    reasons = {f.path.split("/")[-1]: f.reason for f in s.skipped_files}
    assert s.n_items == 4 and set(reasons) == {"broken.mp4", "empty_clip", "mixed_clip"}
    assert "zero frames" in reasons["empty_clip"] and "mixed frame sizes" in reasons["mixed_clip"]
    assert "cannot decode video" in reasons["broken.mp4"]
    with pytest.raises(UnreadableClipError, match="zero frames"):
        open_dataset(root, strict=True)
    with pytest.raises(UnreadableClipError, match="mixed frame sizes"):
        read_clip(mixed)


def test_images_and_clips_in_one_dataset_are_refused(tmp_path):
    root = make_video_dataset(tmp_path / "v", {"a": 2, "b": 2}, n_frames=4)
    make_image_folder(root, {"a": 1})
    with pytest.raises(DatasetError, match="mixes images with video clips"):
        open_dataset(root)


def test_frame_selection_rules_at_48_and_49_frames():
    assert window_for(48) == SHORT_WINDOW == FrameWindow(frames=4, stride=1, kernel=3)
    assert window_for(49) == LONG_WINDOW == FrameWindow(frames=8, stride=4, kernel=7)
    assert dataset_window([40, 48, 60]) == SHORT_WINDOW and dataset_window([40, 49, 60]) == LONG_WINDOW
    # evaluation: fixed, centred window
    assert select_frames(48, SHORT_WINDOW).tolist() == [22, 23, 24, 25]
    assert select_frames(49, LONG_WINDOW).tolist() == [10, 14, 18, 22, 26, 30, 34, 38]
    # training: random start, always consecutive (short) or stride 4 (long), inside the clip
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        short = select_frames(48, SHORT_WINDOW, rng)
        long = select_frames(49, LONG_WINDOW, rng)
        assert np.all(np.diff(short) == 1) and np.all(np.diff(long) == 4)
        assert short.max() <= 47 and long.max() <= 48
        starts.add(int(short[0]))
    assert len(starts) > 20
    # a clip shorter than the window repeats its last frame
    assert select_frames(2, SHORT_WINDOW).tolist() == [0, 1, 1, 1]


def test_frames_larger_than_90_are_resized_to_80():
    assert frame_size(90, 90) == (90, 90) and frame_size(91, 60) == (80, 80) and frame_size(32, 48) == (32, 48)


def test_prepared_clips_use_random_training_windows_and_centred_test_windows(tmp_path):
    ds = open_dataset(make_video_dataset(tmp_path / "v", {"a": 4, "b": 4}, n_frames=49, size=(16, 16)))
    data = prepare_video(ds, "adaptive", test_fraction=0.25, seed=0)
    assert data.window == LONG_WINDOW and data.x_test.shape == (2, 8, 16, 16, 3) and data.n_train == 6
    rng = np.random.default_rng(1)
    a, b = data.train_batch(np.array([0, 1]), rng), data.train_batch(np.array([0, 1]), rng)
    assert a.shape == (2, 8, 16, 16, 3) and not np.array_equal(a, b)


@pytest.mark.parametrize("head", ["temporal_conv", "average"])
def test_both_video_heads_train_one_step(head):
    model = build_model("lenet", 3, head=HeadSpec(width=16), input_size=(16, 16), video=VideoSpec(head, 8, 7))
    assert isinstance(model, VideoFinetuneModel) and (model.temporal is None) == (head == "average")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 8, 3, 16, 16)), torch.tensor([0, 2]))
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ConfigError, match="clips"):
        model(torch.randn(2, 3, 16, 16))


def test_video_spec_refuses_a_kernel_longer_than_the_window():
    with pytest.raises(ConfigError, match="longer than"):
        VideoSpec("temporal_conv", frames=4, kernel=7)
    with pytest.raises(ConfigError, match="video_head"):
        VideoSpec("lstm")


@pytest.mark.parametrize("head", ["temporal_conv", "average"])
def test_finetune_on_a_video_dataset_writes_a_rebuildable_checkpoint(tmp_path, head):
    ds = open_dataset(make_video_dataset(tmp_path / "v", {"left": 5, "right": 5}, n_frames=12, layout=".mp4"))
    cfg = FinetuneConfig(**LENET, video_head=head)
    result = finetune(cfg, tmp_path / "v", TrainOptions(epochs=1), out_dir=tmp_path / "run")
    assert result.status == "completed" and result.steps == 2 and result.n_train == 8 and result.n_test == 2
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt.video == VideoSpec(head, 4, 3) and ckpt.config["video_head"] == head
    model = model_from_checkpoint(ckpt)
    assert isinstance(model, VideoFinetuneModel) and model(torch.zeros(1, 4, 3, 16, 16)).shape == (1, 2)
    assert len(ds) == 10


def test_video_head_is_optional_in_configs_and_a_hyperparameter_of_the_video_space():
    image_cfg = FinetuneConfig()
    assert "video_head" not in image_cfg.to_dict() and image_cfg.video_head_or_default == "temporal_conv"
    assert "video_head" not in build_search_space().keys()
    space = build_search_space(modality="video")
    assert list(space["video_head"].choices) == ["temporal_conv", "average"]
    conf = FinetuneConfig(video_head="average").to_configuration(space)
    assert conf["video_head"] == "average" and image_cfg.to_configuration(space)["video_head"] == "temporal_conv"
    back = FinetuneConfig.from_configspace(dict(conf))
    assert back.video_head == "average"


def test_video_fingerprints_average_selected_frames_and_record_the_modality(tmp_path):
    ds = open_dataset(make_video_dataset(tmp_path / "v", {"a": 3, "b": 3}, n_frames=49, size=(16, 16)))
    fpr = Fingerprinter("resnet18", "random", resolution=32)
    fp = fpr.fingerprint(ds, "hash-v", n_samples=6, seed=0)
    assert fp.features.shape == (6, 512) and fp.spec.modality == "video" and fp.spec.frame_policy
    assert fp.spec.base() == fpr.spec and "modality" not in fpr.spec.to_dict()
    clip = ds.load_clip(int(fp.indices[0])).frames
    from metafeatures.images import resize_rgb
    frames = np.stack([resize_rgb(clip[k], (32, 32)) for k in select_frames(len(clip), LONG_WINDOW)])
    np.testing.assert_allclose(fp.features[0], fpr.features_of_pixels(frames).mean(0), rtol=1e-4, atol=1e-5)
    fp.save(tmp_path / "fp.npz")
    assert Fingerprints.load(tmp_path / "fp.npz", expected_spec=fpr.spec.for_video()).spec == fp.spec
    assert FingerprintSpec.from_dict(fp.spec.to_dict()) == fp.spec
    with pytest.raises(Exception, match="frame policy"):
        FingerprintSpec.from_dict({**fpr.spec.to_dict(), "modality": "video"})


def test_finetune_command_takes_a_video_head(tmp_path, capsys):
    from metarec.cli import main

    make_video_dataset(tmp_path / "v", {"a": 4, "b": 4}, n_frames=8)
    assert main(["finetune", str(tmp_path / "v"), "--backbone", "lenet", "--pretrained", "none", "--input-size",
                 "16", "--video-head", "average", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "run" / "model.pt").video == VideoSpec("average", 4, 3)
    assert main(["finetune", str(tmp_path / "v"), "--video-head", "lstm", "--epochs", "1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "video_head" in capsys.readouterr().err
