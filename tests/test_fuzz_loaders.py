"""Seeded random corruption of small valid files, for every file loader.

Each case takes a valid file built here, applies one to three random mutations (byte
overwrites, bit flips, truncation, insertion, deletion, duplication of a span) with
``random.Random(seed)``, and loads the result. A case passes when the loader either
returns arrays of the expected types and shapes, or raises :class:`DataFormatError` /
``ValueError`` whose message names the file; any other exception fails the test with the
seed that reproduces it. Each test prints how many cases loaded and how many were refused
(``pytest -s``). The ``slow`` variants run ten times as many cases.
"""

from __future__ import annotations

import gzip
import io
import pickle
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nrf.cli.train_cmd import _read_rows
from nrf.data import DataFormatError, load_kddcup99, load_mnist, read_idx
from nrf.data.cifar import read_batch
from nrf.data.kddcup import CATEGORICAL, COLUMNS
from nrf.training.config import DataSection
from nrf.training.data import load_training_data
from test_data_cifar import _Py2StylePickler

CASES = 200
SLOW_CASES = 2000


# --- mutations --------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random, skip: tuple[int, int] | None = None) -> bytes:
    """``data`` with one to three random mutations, at positions outside ``skip`` (a
    ``(start, end)`` span of plain payload, such as pixels, where nearly every change
    loads) as far as earlier mutations have not moved it."""
    buf = bytearray(data)
    start, end = skip or (0, 0)
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(("byte", "bit", "truncate", "insert", "delete", "duplicate"))
        pos = rng.randrange(max(len(buf) - (end - start), 0) + 1)
        if pos >= start:
            pos += end - start
        if kind == "byte" and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif kind == "bit" and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "insert":
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "delete":
            del buf[pos : pos + rng.randint(1, 8)]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos : pos + rng.randint(1, 16)]
    return bytes(buf)


def fuzz(
    name: str,
    valid: bytes,
    path: Path,
    load: Callable[[], Any],
    check: Callable[[Any], None],
    cases: int,
    *,
    seed: int = 0,
    skip: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """Run ``cases`` mutations of ``valid`` (see :func:`mutate` for ``skip``) written to
    ``path``.

    ``load()`` reads the file; ``check(result)`` asserts on a successful load. Errors must
    name ``path``. Returns (loaded, refused)."""
    path.write_bytes(valid)
    check(load())  # the unmutated file loads
    loaded = refused = 0
    for case in range(cases):
        case_seed = seed * 1_000_003 + case
        path.write_bytes(mutate(valid, random.Random(case_seed), skip))
        refusal: Exception | None = None
        try:
            result = load()
        except (DataFormatError, ValueError) as exc:
            refusal = exc
        except Exception as exc:  # any other type is a failure; report the seed
            pytest.fail(f"{name} seed {case_seed}: {type(exc).__name__}: {exc}")
        if refusal is not None:
            if str(path) not in str(refusal):
                pytest.fail(f"{name} seed {case_seed}: message lacks the path: {refusal}")
            refused += 1
            continue
        try:
            check(result)
        except AssertionError as exc:
            pytest.fail(f"{name} seed {case_seed}: loaded but wrong: {exc}")
        loaded += 1
    print(f"\nfuzz {name}: {cases} cases, {loaded} loaded, {refused} refused")
    assert loaded + refused == cases
    return loaded, refused


# --- IDX ----------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    return (
        struct.pack(">I", 0x0800 | array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def check_idx(arr: Any) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert 1 <= arr.ndim <= 4


def run_idx(tmp_path: Path, cases: int, compress: bool) -> tuple[int, int]:
    images = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    path = tmp_path / ("x-idx3-ubyte.gz" if compress else "x-idx3-ubyte")
    valid = gzip.compress(idx_bytes(images)) if compress else idx_bytes(images)
    return fuzz(
        f"IDX ({'gzip' if compress else 'raw'})", valid, path, lambda: read_idx(path), check_idx, cases
    )


def run_mnist(tmp_path: Path, cases: int) -> tuple[int, int]:
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([3, 7], dtype=np.uint8)))
    path = folder / "train-images-idx3-ubyte"

    def check(data: Any) -> None:
        assert data.images.dtype == np.uint8
        assert data.images.shape == (2, 28, 28)
        assert data.labels.tolist() == [3, 7]

    valid = idx_bytes(images)
    return fuzz(
        "MNIST images",
        valid,
        path,
        lambda: load_mnist("train", tmp_path, verify_md5=False),
        check,
        cases,
        skip=(64, len(valid) - 64),  # changes deep in the pixels always load
    )


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_fuzz_idx(tmp_path: Path, compress: bool) -> None:
    loaded, refused = run_idx(tmp_path, CASES, compress)
    assert refused > 0
    if not compress:
        assert loaded > 0


def test_fuzz_mnist(tmp_path: Path) -> None:
    loaded, refused = run_mnist(tmp_path, CASES)
    assert loaded > 0
    assert refused > 0


# --- KDDCUP99 -------------------------------------------------------------------------------

_KDD_VALUES = {
    "protocol_type": ("tcp", "udp", "icmp"),
    "service": ("http", "smtp", "ecr_i"),
    "flag": ("SF", "S0"),
}


def kdd_text(n: int = 8) -> bytes:
    rng = np.random.default_rng(2)
    lines = []
    for i in range(n):
        fields = []
        for c in COLUMNS:
            if c in CATEGORICAL:
                fields.append(_KDD_VALUES[c][i % len(_KDD_VALUES[c])])
            elif c.endswith("_rate"):
                fields.append(f"{rng.integers(0, 101) / 100:g}")
            elif c in ("land", "logged_in", "root_shell", "is_host_login", "is_guest_login"):
                fields.append(str(i % 2))
            else:
                fields.append(str(int(rng.integers(0, 1000))))
        fields.append("normal." if i % 3 == 0 else "smurf.")
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode("ascii")


def run_kdd(tmp_path: Path, cases: int, compress: bool) -> tuple[int, int]:
    folder = tmp_path / "kddcup99"
    folder.mkdir()
    path = folder / ("kddcup.data_10_percent.gz" if compress else "kddcup.data_10_percent")

    def check(data: Any) -> None:
        n = len(data.labels)
        assert n >= 1
        assert data.features.dtype == np.float32
        assert data.features.shape == (n, 118)
        assert data.labels.dtype == np.int64
        assert set(np.unique(data.labels).tolist()) <= {0, 1}
        assert len(data.feature_names) == 118
        np.testing.assert_array_equal(data.features[:, 38:].sum(axis=1), np.full(n, 3.0))

    valid = gzip.compress(kdd_text()) if compress else kdd_text()
    return fuzz(
        f"KDDCUP99 ({'gzip' if compress else 'raw'})",
        valid,
        path,
        lambda: load_kddcup99(tmp_path),
        check,
        cases,
    )


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_fuzz_kddcup99(tmp_path: Path, compress: bool) -> None:
    loaded, refused = run_kdd(tmp_path, CASES, compress)
    assert refused > 0
    if not compress:
        assert loaded > 0


# --- CIFAR-10 -------------------------------------------------------------------------------


CIFAR_PIXELS = np.random.default_rng(3).integers(0, 256, size=(2, 3072), dtype=np.uint8)


def cifar_bytes(flavour: str | int) -> bytes:
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [4, 1],
        b"data": CIFAR_PIXELS,
        b"filenames": [b"a.png", b"b.png"],
    }
    if flavour == "py2":
        out = io.BytesIO()
        _Py2StylePickler(out, protocol=2).dump(batch)
        return out.getvalue()
    return pickle.dumps(batch, protocol=int(flavour))


def check_cifar(result: Any) -> None:
    images, labels = result
    assert isinstance(images, np.ndarray)
    assert images.dtype == np.uint8
    assert images.ndim == 4
    assert images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.int64
    assert labels.shape == (images.shape[0],)
    assert ((labels >= 0) & (labels <= 9)).all()


def run_cifar(tmp_path: Path, cases: int, flavour: str | int) -> tuple[int, int]:
    path = tmp_path / "data_batch_1"
    valid = cifar_bytes(flavour)
    pixels = CIFAR_PIXELS.tobytes()
    start = valid.index(pixels) if pixels in valid else valid.index(pixels.decode("latin-1").encode())
    skip = (start + 16, start + len(pixels) - 16)  # the 6 kB of pixels, but for their edges
    return fuzz(
        f"CIFAR batch ({flavour})", valid, path, lambda: read_batch(path), check_cifar, cases, skip=skip
    )


@pytest.mark.parametrize("flavour", ["py2", 2, 4, 5])
def test_fuzz_cifar(tmp_path: Path, flavour: str | int) -> None:
    loaded, refused = run_cifar(tmp_path, CASES, flavour)
    assert loaded > 0
    assert refused > 0


# --- .npy / .csv rows: training data and nrf score --input ----------------------------------


def npy_bytes() -> bytes:
    out = io.BytesIO()
    np.save(out, np.arange(12, dtype=np.float64).reshape(6, 2) / 7)
    return out.getvalue()


def csv_bytes() -> bytes:
    return b"0.5,1,2\n-3,4e-2,5\n\n6,7.25,8\n9,10,11\n"


def check_training(data: Any) -> None:
    assert isinstance(data.train, torch.Tensor)
    assert data.train.dtype == torch.float32
    assert data.train.dim() >= 2
    assert data.train.shape[0] >= 1
    assert bool(torch.isfinite(data.train).all())


def check_rows(rows: Any) -> None:
    assert isinstance(rows, np.ndarray)
    assert rows.dtype == np.float32
    assert rows.ndim >= 2
    assert rows.shape[0] >= 1
    assert np.isfinite(rows).all()


def run_training_file(tmp_path: Path, cases: int, kind: str) -> tuple[int, int]:
    path = tmp_path / f"d.{kind}"
    section = DataSection(name=kind, path=str(path))
    valid = npy_bytes() if kind == "npy" else csv_bytes()
    return fuzz(
        f"training data ({kind})", valid, path, lambda: load_training_data(section, 0), check_training, cases
    )


def run_score_input(tmp_path: Path, cases: int, kind: str) -> tuple[int, int]:
    path = tmp_path / f"x.{kind}"
    valid = npy_bytes() if kind == "npy" else csv_bytes()
    return fuzz(f"score --input ({kind})", valid, path, lambda: _read_rows(path), check_rows, cases)


@pytest.mark.parametrize("kind", ["npy", "csv"])
def test_fuzz_training_data_file(tmp_path: Path, kind: str) -> None:
    loaded, refused = run_training_file(tmp_path, CASES, kind)
    assert loaded > 0
    assert refused > 0


@pytest.mark.parametrize("kind", ["npy", "csv"])
def test_fuzz_score_input(tmp_path: Path, kind: str) -> None:
    loaded, refused = run_score_input(tmp_path, CASES, kind)
    assert loaded > 0
    assert refused > 0


# --- bigger runs ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "target",
    ["idx-raw", "idx-gzip", "mnist", "kdd-raw", "cifar-py2", "cifar-4", "npy", "csv"],
)
def test_fuzz_many_cases(tmp_path: Path, target: str) -> None:
    runners: dict[str, Callable[[], tuple[int, int]]] = {
        "idx-raw": lambda: run_idx(tmp_path, SLOW_CASES, False),
        "idx-gzip": lambda: run_idx(tmp_path, SLOW_CASES, True),
        "mnist": lambda: run_mnist(tmp_path, SLOW_CASES),
        "kdd-raw": lambda: run_kdd(tmp_path, SLOW_CASES, False),
        "cifar-py2": lambda: run_cifar(tmp_path, SLOW_CASES, "py2"),
        "cifar-4": lambda: run_cifar(tmp_path, SLOW_CASES, 4),
        "npy": lambda: run_training_file(tmp_path, SLOW_CASES, "npy"),
        "csv": lambda: run_training_file(tmp_path, SLOW_CASES, "csv"),
    }
    loaded, refused = runners[target]()
    assert loaded + refused == SLOW_CASES
