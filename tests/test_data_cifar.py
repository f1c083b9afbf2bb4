"""CIFAR-10 python batches: layout, and refusal of anything but numeric data in the pickles."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nrf.data import DataFormatError, DataNotFoundError, load_cifar10
from nrf.data.cifar import SUBDIR, TEST_BATCHES, TRAIN_BATCHES, read_batch


class _Py2StylePickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` opcodes, as in the official (Python 2) batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def dump(obj: Any, path: Path, flavour: str | int = "py2") -> Path:
    """Pickle ``obj`` to ``path``: ``"py2"`` like the real files, or a Python 3 protocol number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        if flavour == "py2":
            _Py2StylePickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=flavour)
    return path


def make_batches(
    root: Path, n: int = 3, flavour: str | int = "py2"
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write all six batches with ``n`` random images each under ``root/cifar-10-batches-py``."""
    rng = np.random.default_rng(0)
    out = {}
    for k, name in enumerate(TRAIN_BATCHES + TEST_BATCHES):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [(k + i) % 10 for i in range(n)]
        dump({b"batch_label": b"batch", b"data": data, b"labels": labels}, root / SUBDIR / name, flavour)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize(
    "flavour",
    ["py2", 2, 3, 4, 5],
)
def test_train_and_test_round_trip(tmp_path: Path, flavour: str | int) -> None:
    batches = make_batches(tmp_path, n=3, flavour=flavour)
    train = load_cifar10("train", root=tmp_path)
    test = load_cifar10("test", root=tmp_path)
    assert train.images.shape == (15, 32, 32, 3)
    assert test.images.shape == (3, 32, 32, 3)
    assert train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64
    assert train.labels.tolist() == [lab for name in TRAIN_BATCHES for lab in batches[name][1]]
    assert test.labels.tolist() == batches["test_batch"][1]
    flat = np.concatenate([batches[name][0] for name in TRAIN_BATCHES])
    # row layout: 1024 red values, then 1024 green, then 1024 blue, each 32 x 32 row-major
    for ch in range(3):
        np.testing.assert_array_equal(
            train.images[..., ch], flat[:, ch * 1024 : (ch + 1) * 1024].reshape(-1, 32, 32)
        )


def test_pixel_channel_layout(tmp_path: Path) -> None:
    data = np.zeros((1, 3072), dtype=np.uint8)
    r, c = 5, 17
    data[0, r * 32 + c] = 11  # red
    data[0, 1024 + r * 32 + c] = 22  # green
    data[0, 2048 + r * 32 + c] = 33  # blue
    path = dump({b"data": data, b"labels": [4]}, tmp_path / "batch")
    images, labels = read_batch(path)
    assert images.shape == (1, 32, 32, 3)
    assert images[0, r, c].tolist() == [11, 22, 33]
    assert images[0, c, r].tolist() == [0, 0, 0]
    assert int(images.sum()) == 66
    assert labels.tolist() == [4]


def test_str_keys_are_accepted(tmp_path: Path) -> None:
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    path = dump({"data": data, "labels": [1, 2]}, tmp_path / "batch", 4)
    images, labels = read_batch(path)
    assert labels.tolist() == [1, 2]
    assert images[1, 0, 0].tolist() == [data[1, 0], data[1, 1024], data[1, 2048]]


class _Payload:
    """Unpickling this runs ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Payload]:
    return {
        "os.system": _Payload(os.system, f"touch '{marker}'"),
        "open": _Payload(open, str(marker), "w"),
    }


@pytest.mark.parametrize("kind", ["os.system", "open"])
@pytest.mark.parametrize("flavour", ["py2", 4])
@pytest.mark.parametrize("where", ["top", "data", "labels"])
def test_malicious_pickle_is_refused_and_never_runs(
    tmp_path: Path, kind: str, flavour: str | int, where: str
) -> None:
    # the payload is live: a plain pickle.load does run it
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_payloads(probe)[kind], protocol=4))
    assert probe.exists()

    marker = tmp_path / "hacked"
    evil = _payloads(marker)[kind]
    good = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}
    obj = evil if where == "top" else {**good, where.encode(): evil}
    path = dump(obj, tmp_path / SUBDIR / "test_batch", flavour)
    with pytest.raises(DataFormatError, match="refusing to load global") as info:
        load_cifar10("test", root=tmp_path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_object_array_is_refused(tmp_path: Path) -> None:
    data = np.zeros((1, 3072), dtype=object)
    path = dump({b"data": data, b"labels": [0]}, tmp_path / SUBDIR / "test_batch", 4)
    with pytest.raises(DataFormatError, match="object") as info:
        load_cifar10("test", root=tmp_path)
    assert str(path) in str(info.value)


def test_nested_object_array_is_refused(tmp_path: Path) -> None:
    good = np.zeros((1, 3072), np.uint8)
    hidden = {b"extra": [np.array(["a", 1], dtype=object)]}
    path = dump({b"data": good, b"labels": [0], b"meta": hidden}, tmp_path / "batch", "py2")
    with pytest.raises(DataFormatError, match="object"):
        read_batch(path)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({b"data": np.zeros((2, 3072), np.uint8)}, "labels"),
        ({b"labels": [0, 1]}, "data"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "0-9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 3]}, "0-9"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, "3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ([np.zeros((2, 3072), np.uint8), [0, 1]], "dict"),
    ],
    ids=["no-labels", "no-data", "label-10", "label-neg", "count", "width", "dtype", "list"],
)
def test_bad_content(tmp_path: Path, obj: Any, match: str) -> None:
    path = dump(obj, tmp_path / SUBDIR / "data_batch_1", "py2")
    with pytest.raises(DataFormatError, match=match) as info:
        read_batch(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a pickle", pickle.dumps({b"a": 1}, protocol=4)[:-5]])
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "batch"
    path.write_bytes(content)
    with pytest.raises(DataFormatError) as info:
        read_batch(path)
    assert str(path) in str(info.value)


def test_missing_batch(tmp_path: Path) -> None:
    make_batches(tmp_path, n=1)
    (tmp_path / SUBDIR / "data_batch_4").unlink()
    assert len(load_cifar10("test", root=tmp_path)) == 1
    with pytest.raises(DataNotFoundError) as info:
        load_cifar10("train", root=tmp_path)
    assert str(tmp_path / SUBDIR / "data_batch_4") in info.value.args[0]
    assert "nrf data download cifar10" in info.value.args[0]


def test_bad_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_cifar10("valid", root=tmp_path)
