"""Tests of metafeatures.fetch. The network is mocked throughout: socket.create_connection is replaced
by stubs (refusing, hanging or pretending to connect) and torchvision dataset classes by tiny local
stand-ins, so nothing is ever downloaded and the tests pass offline."""

from __future__ import annotations

import inspect
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.datasets
from PIL import Image

from metafeatures import fetch
from metafeatures.errors import DatasetFetchError, OutputExistsError
from metafeatures.fetch import FETCHABLE, convert_to_image_folder, fetch_dataset, probe_host


class TinyPIL:
    """Map-style stand-in yielding (PIL image, int) pairs, like torchvision's datasets."""

    def __init__(self, n: int = 7, mode: str = "RGB", size: tuple[int, int] = (12, 10), n_classes: int = 3):
        self.n, self.mode, self.size, self.n_classes = n, mode, size, n_classes

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i >= self.n:
            raise IndexError(i)
        colour = (i * 30 % 256, 0, 0) if self.mode == "RGB" else i * 30 % 256
        return Image.new(self.mode, self.size, colour), i % self.n_classes


class TinyTensor:
    """Iterable stand-in (no __len__) yielding (uint8 tensor C,H,W, tensor label) pairs."""

    def __init__(self, n: int = 5, channels: int = 1):
        self.n, self.channels = n, channels

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        for i in range(self.n):
            img = torch.randint(0, 256, (self.channels, 9, 11), dtype=torch.uint8, generator=g)
            yield img, torch.tensor(i % 2)


def _pngs(root: Path) -> list[Path]:
    return sorted(root.rglob("*.png"))


def test_convert_pil_dataset_layout_and_count(tmp_path):
    n = convert_to_image_folder(TinyPIL(7), tmp_path, "train", ["a", "b", "c"], progress=False)
    assert n == 7
    files = _pngs(tmp_path)
    assert len(files) == 7
    assert {f.relative_to(tmp_path).parts[:2] for f in files} == {("train", "a"), ("train", "b"), ("train", "c")}
    assert (tmp_path / "train" / "a" / "000000.png").is_file()
    assert (tmp_path / "train" / "b" / "000001.png").is_file()
    assert len(list((tmp_path / "train" / "a").iterdir())) == 3
    with Image.open(tmp_path / "train" / "a" / "000003.png") as im:
        assert im.mode == "RGB" and im.size == (12, 10)
        assert im.getpixel((0, 0)) == (90, 0, 0)


def test_convert_tensor_dataset_layout_and_count(tmp_path):
    n = convert_to_image_folder(TinyTensor(5, channels=1), tmp_path, "test", ["even", "odd"], progress=False)
    assert n == 5
    assert sorted(p.name for p in (tmp_path / "test").iterdir()) == ["even", "odd"]
    assert len(_pngs(tmp_path / "test" / "even")) == 3 and len(_pngs(tmp_path / "test" / "odd")) == 2
    with Image.open(tmp_path / "test" / "odd" / "000001.png") as im:
        assert im.mode == "L" and im.size == (11, 9)
    n = convert_to_image_folder(TinyTensor(4, channels=3), tmp_path, "train", ["even", "odd"], progress=False)
    assert n == 4
    with Image.open(tmp_path / "train" / "even" / "000000.png") as im:
        assert im.mode == "RGB" and im.size == (11, 9)
        first = next(iter(TinyTensor(1, channels=3)))[0]
        np.testing.assert_array_equal(np.asarray(im), first.permute(1, 2, 0).numpy())


def test_convert_handles_odd_class_names_and_float_tensors(tmp_path):
    items = [(torch.rand(3, 4, 4), 0), (np.zeros((4, 4), np.float32), 1), (Image.new("P", (4, 4)), 1)]
    n = convert_to_image_folder(items, tmp_path, "train", ["T-shirt/top", "../up"], progress=False)
    assert n == 3
    dirs = sorted(p.name for p in (tmp_path / "train").iterdir())
    assert len(dirs) == 2 and all("/" not in d and not d.startswith(".") for d in dirs)
    assert all(f.is_relative_to(tmp_path / "train") for f in _pngs(tmp_path))


def test_convert_rejects_label_outside_class_names(tmp_path):
    with pytest.raises(DatasetFetchError, match="label 2"):
        convert_to_image_folder(TinyPIL(3, n_classes=3), tmp_path, "train", ["a", "b"], progress=False)


def test_unknown_dataset_name_lists_known_ones(tmp_path):
    with pytest.raises(DatasetFetchError, match="fetchable: .*mnist.*cifar10"):
        fetch_dataset("imagenet-22k", tmp_path / "x", progress=False)


@pytest.fixture
def no_torchvision_download(monkeypatch):
    """Make any attempt to build a torchvision dataset fail the test."""

    def boom(*args, **kwargs):
        raise AssertionError("torchvision must not be called when the host is unreachable")

    for spec in FETCHABLE.values():
        monkeypatch.setattr(torchvision.datasets, spec.tv_class, type(spec.tv_class, (), {
            "__init__": boom, **{k: v for k, v in vars(getattr(torchvision.datasets, spec.tv_class)).items()
                                 if k in fetch._URL_ATTRIBUTES}}))


def test_unreachable_host_raises_quickly(monkeypatch, tmp_path, no_torchvision_download):
    calls = []

    def refuse(address, timeout=None, *args, **kwargs):  # mocked internet: nothing answers
        calls.append(address)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    t0 = time.monotonic()
    with pytest.raises(DatasetFetchError) as info:
        fetch_dataset("cifar10", tmp_path / "cifar10", timeout_s=2, progress=False)
    assert time.monotonic() - t0 < 1.5
    msg = str(info.value)
    assert "cannot reach www.cs.toronto.edu to download cifar10" in msg
    assert "copy an image-folder dataset by hand instead, see README" in msg
    assert calls and calls[0] == ("www.cs.toronto.edu", 443)
    assert not (tmp_path / "cifar10").exists()


def test_hanging_name_lookup_is_cut_off_at_the_timeout(monkeypatch, tmp_path, no_torchvision_download):
    def hang(address, timeout=None, *args, **kwargs):  # mocked internet: DNS never answers
        time.sleep(3)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    t0 = time.monotonic()
    with pytest.raises(DatasetFetchError, match="cannot reach .* no answer within"):
        fetch_dataset("mnist", tmp_path / "mnist", timeout_s=0.3, progress=False)
    assert time.monotonic() - t0 < 1.5


@pytest.mark.parametrize("name", sorted(FETCHABLE))
def test_every_entry_resolves_a_probe_host_offline(name, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("resolving the probe host must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    host = probe_host(name)
    assert isinstance(host, str) and "." in host and "/" not in host
    spec = FETCHABLE[name]
    cls = getattr(torchvision.datasets, spec.tv_class)
    assert set(spec.splits) <= {"train", "test"} and "train" in spec.splits
    for kwargs in (kw for parts in spec.splits.values() for kw in parts):
        inspect.signature(cls).bind(root="x", download=True, **spec.extra, **kwargs)  # valid arguments
    assert probe_host(name.upper()) == host
    assert {"mnist", "fashionmnist", "kmnist", "cifar10", "cifar100", "svhn", "eurosat", "flowers102",
            "oxfordiiitpet", "dtd"} <= set(FETCHABLE)


class FakeCIFAR10:
    """Stand-in for torchvision.datasets.CIFAR10: same URL attribute and arguments, 6 or 4 tiny images."""

    url = torchvision.datasets.CIFAR10.url
    built: list[dict] = []

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        assert download and Path(root).is_dir()
        FakeCIFAR10.built.append({"root": root, "train": train})
        self.classes = ["airplane", "automobile"]
        rng = np.random.default_rng(int(train))
        self.data = rng.integers(0, 256, (6 if train else 4, 32, 32, 3), dtype=np.uint8)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return Image.fromarray(self.data[i]), i % 2


class _FakeSocket:
    def close(self):
        pass


def test_fetch_end_to_end_with_mocked_network(monkeypatch, tmp_path):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: _FakeSocket())  # mocked internet
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    FakeCIFAR10.built.clear()
    out = fetch_dataset("CIFAR10", tmp_path / "coll" / "cifar10", download_root=tmp_path / "dl", progress=False)
    assert out == tmp_path / "coll" / "cifar10"
    assert [b["train"] for b in FakeCIFAR10.built] == [True, False]
    assert len(_pngs(out / "train")) == 6 and len(_pngs(out / "test")) == 4
    assert sorted(p.name for p in (out / "train").iterdir()) == ["airplane", "automobile"]
    source = (out / "SOURCE.txt").read_text()
    assert "cifar10" in source and torchvision.__version__ in source and "date:" in source
    assert not [p for p in (tmp_path / "coll").iterdir() if p.name.startswith(".")]
    with pytest.raises(OutputExistsError):
        fetch_dataset("cifar10", out, download_root=tmp_path / "dl", progress=False)
    fetch_dataset("cifar10", out, progress=False, overwrite=True)  # temporary download folder this time
    assert len(_pngs(out)) == 10
