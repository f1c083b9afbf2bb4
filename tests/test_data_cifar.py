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


# --- hand-made opcode streams (protocol 2) ------------------------------------------------

PROTO2 = b"\x80\x02"
GOOD_ENTRIES = (
    b"U\x04data"  # SHORT_BINSTRING "data"
    + pickle.dumps(np.zeros((1, 3072), np.uint8), protocol=2)[2:-1]  # the array, no PROTO / STOP
    + b"U\x06labels]K\x00a"  # [0]
)


def batch_with(extra: bytes) -> bytes:
    """A valid batch dict whose third entry, under key "extra", is built by ``extra``."""
    return PROTO2 + b"}(" + GOOD_ENTRIES + b"U\x05extra" + extra + b"u."


def deep_list(depth: int) -> bytes:
    return b"]" * depth + b"a" * (depth - 1)


def test_hand_made_batch_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(batch_with(b"K\x07"))
    images, labels = read_batch(path)
    assert images.shape == (1, 32, 32, 3)
    assert labels.tolist() == [0]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (b"]q\x00h\x00a", "contains itself"),  # l = []; l.append(l)
        (b"}q\x00K\x01h\x00s", "contains itself"),  # d = {}; d[1] = d
        (deep_list(100_000), "nested deeper than 32 levels"),
        (deep_list(33), "nested deeper than 32 levels"),
        (b")" + b"\x85" * 100_000, "nested deeper than 32 levels"),  # ((((),),),)...
    ],
    ids=["self-list", "self-dict", "list-100000", "list-33", "tuple-100000"],
)
def test_self_reference_and_deep_nesting_are_refused(tmp_path: Path, extra: bytes, match: str) -> None:
    path = tmp_path / SUBDIR / "test_batch"
    path.parent.mkdir(parents=True)
    path.write_bytes(batch_with(extra))
    with pytest.raises(DataFormatError, match=match) as info:
        load_cifar10("test", root=tmp_path)
    assert str(path) in str(info.value)


def test_nesting_built_through_the_memo_is_counted(tmp_path: Path) -> None:
    """Lists memoized while empty and filled afterwards, parent first: each append only
    adds one level to a list seen so far, yet the result nests 100,000 deep."""
    n = 100_000
    stream = b"".join(b"]r" + i.to_bytes(4, "little") for i in range(n))  # EMPTY_LIST, LONG_BINPUT i
    stream += b"0" * n  # POP them all
    stream += b"".join(
        b"j" + i.to_bytes(4, "little") + b"j" + (i + 1).to_bytes(4, "little") + b"a0" for i in range(n - 1)
    )  # memo[i].append(memo[i + 1])
    stream += b"j" + (0).to_bytes(4, "little")
    path = tmp_path / "batch"
    path.write_bytes(batch_with(stream))
    with pytest.raises(DataFormatError, match="nested deeper than 32 levels") as info:
        read_batch(path)
    assert str(path) in str(info.value)


def test_shallow_nesting_and_shared_containers_are_accepted(tmp_path: Path) -> None:
    shared = [1, 2]
    meta = {b"a": [shared, shared, (shared,)], b"b": [[[[[[[[[[0]]]]]]]]]]}
    path = dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 4], b"meta": meta}, tmp_path / "b", 4)
    images, labels = read_batch(path)
    assert images.shape == (2, 32, 32, 3)
    assert labels.tolist() == [3, 4]


@pytest.mark.slow
def test_a_deep_dictionary_key_never_reaches_the_unpickler(tmp_path: Path) -> None:
    """Hashing a 1,000,000-deep tuple key overflows the C stack inside ``pickle`` (a crash,
    not an exception): the check of the opcode stream must refuse it before."""
    import subprocess
    import sys

    path = tmp_path / "batch"
    path.write_bytes(PROTO2 + b"}(" + GOOD_ENTRIES + b")" + b"\x85" * 1_000_000 + b"K\x01u.")
    code = (
        "import sys\n"
        "from nrf.data import DataFormatError\n"
        "from nrf.data.cifar import read_batch\n"
        "try:\n"
        "    read_batch(sys.argv[1])\n"
        "except DataFormatError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(path) in done.stdout
    assert "nested deeper than 32 levels" in done.stdout


@pytest.mark.parametrize("encoding", [b"zlib", b"rot13", b"utf-8"])
def test_codecs_encode_only_with_latin1(tmp_path: Path, encoding: bytes) -> None:
    call = b"c_codecs\nencode\nX\x01\x00\x00\x00x" + b"X" + len(encoding).to_bytes(4, "little") + encoding
    path = tmp_path / "batch"
    path.write_bytes(batch_with(call + b"\x86R"))  # TUPLE2, REDUCE
    with pytest.raises(DataFormatError, match=r"refusing _codecs\.encode with encoding") as info:
        read_batch(path)
    assert str(path) in str(info.value)
    path.write_bytes(
        batch_with(
            call.replace(b"X" + len(encoding).to_bytes(4, "little") + encoding, b"X\x06\x00\x00\x00latin1")
            + b"\x86R"
        )
    )
    assert read_batch(path)[1].tolist() == [0]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([0.5, 1.0], "must be integers, got dtype float64"),
        ([True, False], "must be integers, got dtype bool"),
        ([b"x", b"y"], "must be integers"),
        ([[0], [1]], r"flat list of integers, got shape \(2, 1\)"),
        ([0, [1]], "must be a list of integers"),
        (b"\x00\x01", "must be a list of integers, got bytes"),
        ([2**70, 1], "must be integers, got dtype object"),
    ],
    ids=["float", "bool", "bytes", "2-d", "ragged", "bytes-entry", "huge"],
)
def test_labels_that_are_not_integers(tmp_path: Path, labels: object, match: str) -> None:
    path = dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, tmp_path / "batch", 4)
    with pytest.raises(DataFormatError, match=match) as info:
        read_batch(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([[0] * 3072], "got list"),
        (np.zeros((0, 3072), np.uint8), "no images"),
    ],
    ids=["list", "empty"],
)
def test_data_must_be_a_non_empty_uint8_array(tmp_path: Path, data: object, match: str) -> None:
    path = dump({b"data": data, b"labels": []}, tmp_path / "batch", 4)
    with pytest.raises(DataFormatError, match=match) as info:
        read_batch(path)
    assert str(path) in str(info.value)


def _array_with_dtype_state(dtype_state: bytes) -> bytes:
    """A protocol-2 pickle of ``np.zeros((1, 3072), uint8)`` whose dtype ``BUILD`` state is
    the opcodes ``dtype_state`` (a tuple) instead of numpy's."""
    return (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01K\x01M\x00\x0c\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        + dtype_state
        + b"b\x89T\x00\x0c\x00\x00"
        + bytes(3072)
        + b"tb"
    )


NUMPY_DTYPE_STATE = b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"


def _batch_around(array_ops: bytes) -> bytes:
    return PROTO2 + b"}(U\x04data" + array_ops + b"U\x06labels]K\x05au."


def test_hand_made_array_pickle_loads(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    path.write_bytes(_batch_around(_array_with_dtype_state(NUMPY_DTYPE_STATE)))
    images, labels = read_batch(path)
    assert images.shape == (1, 32, 32, 3)
    assert int(images.sum()) == 0
    assert labels.tolist() == [5]


@pytest.mark.parametrize(
    "state",
    [
        # flags -1: marks the uint8 dtype as holding Python objects (numpy then fails
        # deep inside with a SystemError, or dereferences the pixel bytes)
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x3ft",  # flags 63
        b"(K\x03U\x01|NNNK\x08J\xff\xff\xff\xffK\x00t",  # elsize 8
        b"(K\x03U\x01!NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t",  # byte order '!'
        b"K\x03",  # not a tuple
    ],
    ids=["flags-minus-1", "flags-63", "elsize", "endian", "not-a-tuple"],
)
def test_dtype_state_other_than_numpys_is_refused(tmp_path: Path, state: bytes) -> None:
    path = tmp_path / "batch"
    path.write_bytes(_batch_around(_array_with_dtype_state(state)))
    with pytest.raises(DataFormatError, match="refusing a dtype state") as info:
        read_batch(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("ops", "match"),
    [
        (b"cnumpy\nndarray\nK\x05\x85\x85R", "not callable"),  # ndarray((5,))
        (b"cnumpy\ndtype\n]U\x01aU\x02f8\x86a\x85R", "must be a string"),  # dtype([("a", "f8")])
        (b"cnumpy\ndtype\nU\x01OK\x00K\x01\x87R", "refusing dtype object"),
        (b"cnumpy\ndtype\nU\x05u1,u1K\x00K\x01\x87R", "refusing dtype"),
        (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nM\x00\x10\x85U\x01b\x87R", "_reconstruct"),
        (b"]K\x01b", "refusing to set the state of a list"),
        (b"cnumpy.core.numeric\n_frombuffer\n(U\x04abcdK\x01K\x01\x85U\x01CtR", "must be a numpy dtype"),
    ],
    ids=[
        "ndarray-call",
        "structured-spec",
        "object-dtype",
        "record-code",
        "reconstruct-shape",
        "build-list",
        "frombuffer-dtype",
    ],
)
def test_numpy_stand_ins_take_only_numpys_arguments(tmp_path: Path, ops: bytes, match: str) -> None:
    path = tmp_path / "batch"
    path.write_bytes(batch_with(ops))
    with pytest.raises(DataFormatError, match=match) as info:
        read_batch(path)
    assert str(path) in str(info.value)
