"""Fingerprints: backbone weights (never a silent fallback), spec, artifact, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metafeatures.backbones import default_backbone, get_backbone, load_backbone, register_backbone
from metafeatures.datasets import open_dataset
from metafeatures.errors import ArtifactError, SpecMismatchError, WeightsNotFoundError
from metafeatures.fingerprint import Fingerprinter, Fingerprints, FingerprintSpec, cache_path
from metafeatures.offline_weights import SHA256, install_offline_weights
from metafeatures.summary import content_hash
from tests.fixtures.factories import make_image_folder, make_npz


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub cache and weights dir with nothing in them."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("METAREC_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path


def test_missing_imagenet_weights_fail_with_instructions(empty_hub):
    with pytest.raises(WeightsNotFoundError) as err:
        load_backbone("resnet18", "imagenet")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(empty_hub / "hub" / "checkpoints") in msg
    assert "METAREC_WEIGHTS_DIR" in msg or str(empty_hub / "weights") in msg


def test_default_backbone_announces_the_choice(empty_hub):
    assert default_backbone("imagenet") == ("resnet18", "resnet18 with ImageNet weights")
    install_offline_weights(empty_hub / "hub" / "checkpoints")
    name, why = default_backbone("imagenet")
    assert name == "mobilenet_v2" and "resnet18's ImageNet file is not installed" in why
    assert default_backbone("random")[0] == "resnet18"


def test_weights_file_with_wrong_hash_is_refused(empty_hub):
    (empty_hub / "weights").mkdir()
    torch.save({}, empty_hub / "weights" / "resnet18-f37072fd.pth")
    with pytest.raises(ArtifactError, match="does not match the hash prefix"):
        load_backbone("resnet18", "imagenet")


def test_random_weights_are_seeded():
    _, ident, h1 = load_backbone("resnet18", "random", seed=0)
    _, _, h2 = load_backbone("resnet18", "random", seed=0)
    _, _, h3 = load_backbone("resnet18", "random", seed=1)
    assert ident == "random:seed=0" and h1 == h2 != h3


def test_state_dict_path_full_or_truncated(tmp_path):
    model, _, digest = load_backbone("resnet18", "random", seed=5)
    torch.save(model.state_dict(), tmp_path / "trunc.pt")
    loaded, ident, _ = load_backbone("resnet18", str(tmp_path / "trunc.pt"))
    assert ident == "file:trunc.pt"
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(model(x), loaded(x))
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ArtifactError, match="does not fit backbone resnet18"):
        load_backbone("resnet18", str(tmp_path / "bad.pt"))
    with pytest.raises(WeightsNotFoundError):
        load_backbone("resnet18", str(tmp_path / "absent.pt"))


def test_registry_refuses_duplicates_and_names_known():
    with pytest.raises(ValueError, match="already registered"):
        register_backbone(get_backbone("resnet18"))
    with pytest.raises(KeyError, match="mobilenet_v2"):
        get_backbone("vgg99")


def test_fingerprints_are_deterministic_and_cached(tmp_path, monkeypatch):
    ds = open_dataset(make_image_folder(tmp_path / "ds", {"a": 6, "b": 6}))
    fpr = Fingerprinter("resnet18", "random", resolution=32)
    h = content_hash(ds)
    fp = fpr.fingerprint(ds, h, n_samples=8, seed=1)
    assert fp.features.shape == (8, 512) and fp.features.dtype == np.float32
    assert cache_path(h, fpr.spec, 8, 1).is_file()
    monkeypatch.setattr(fpr, "forward", lambda batch: pytest.fail("cache was not used"))
    again = fpr.fingerprint(ds, h, n_samples=8, seed=1)
    assert np.array_equal(again.features, fp.features) and np.array_equal(again.indices, fp.indices)
    fresh = Fingerprinter("resnet18", "random", resolution=32).fingerprint(ds, h, 8, seed=1, use_cache=False)
    np.testing.assert_allclose(fresh.features, fp.features, rtol=1e-5, atol=1e-5)


def test_decoded_images_are_reused_under_a_new_spec(tmp_path, monkeypatch):
    ds = open_dataset(make_image_folder(tmp_path / "ds", {"a": 6, "b": 6}))
    h = content_hash(ds)
    first = Fingerprinter("resnet18", "random", resolution=32).fingerprint(ds, h, n_samples=8)
    monkeypatch.setattr(type(ds), "load", lambda self, i: pytest.fail("images were decoded twice"))
    other = Fingerprinter("resnet18", "random", resolution=32, seed=3).fingerprint(ds, h, n_samples=8)
    assert np.array_equal(first.indices, other.indices)
    assert not np.allclose(first.features, other.features)


def test_fingerprint_file_round_trip_and_refusals(tmp_path):
    ds = open_dataset(make_npz(tmp_path / "d.npz", n=20))
    fpr = Fingerprinter("resnet18", "random", resolution=32)
    fp = fpr.fingerprint(ds, content_hash(ds), n_samples=10)
    out = tmp_path / "fp.npz"
    fp.save(out)
    back = Fingerprints.load(out, expected_spec=fpr.spec)
    assert np.array_equal(back.features, fp.features) and back.spec == fpr.spec
    assert back.provenance["n_samples"] == 10 and "created_at" in back.provenance
    other = Fingerprinter("resnet18", "random", resolution=48).spec
    with pytest.raises(SpecMismatchError, match="resolution"):
        Fingerprints.load(out, expected_spec=other)
    with np.load(out) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["__meta__"]))
    meta["format_version"] = 99
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v99.npz", **arrays)
    with pytest.raises(ArtifactError, match="format version 99"):
        Fingerprints.load(tmp_path / "v99.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ArtifactError, match="not a metarec fingerprint file"):
        Fingerprints.load(tmp_path / "junk.npz")


def test_spec_validation_and_round_trip():
    spec = Fingerprinter("resnet18", "random", resolution=32).spec
    assert FingerprintSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="resolution"):
        FingerprintSpec("resnet18", "random:seed=0", "x", resolution=4, feature_dim=512)
    with pytest.raises(ArtifactError, match="spec version"):
        FingerprintSpec.from_dict({**spec.to_dict(), "spec_version": 2})
    with pytest.raises(ArtifactError, match="malformed"):
        FingerprintSpec.from_dict({"backbone": "resnet18"})


def test_offline_mobilenet_weights_install_and_load(tmp_path, monkeypatch):
    """The packaged torchvision MobileNetV2 file (installed by make) verifies and loads strictly."""
    dest = install_offline_weights(tmp_path / "hub" / "checkpoints")
    assert dest.name == "mobilenet_v2-b0353104.pth"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model, ident, digest = load_backbone("mobilenet_v2", "imagenet")
    assert ident == "imagenet:MobileNet_V2_Weights.IMAGENET1K_V1" and digest == SHA256
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1280)


def test_pretrained_fingerprints_separate_different_datasets(tmp_path, monkeypatch):
    """Real ImageNet features of two visibly different datasets are further apart than two halves of one."""
    install_offline_weights(tmp_path / "hub" / "checkpoints")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    fpr = Fingerprinter("mobilenet_v2", "imagenet", resolution=32)
    colour = open_dataset(make_image_folder(tmp_path / "c", {"a": 24, "b": 24}))
    grey = open_dataset(make_npz(tmp_path / "g.npz", n=48, shape=(8, 8)))
    fc = fpr.fingerprint(colour, content_hash(colour), 48).features
    fg = fpr.fingerprint(grey, content_hash(grey), 48).features
    within = np.linalg.norm(fc[:24].mean(0) - fc[24:].mean(0))
    between = np.linalg.norm(fc.mean(0) - fg.mean(0))
    assert between > 2 * within
