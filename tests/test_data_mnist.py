"""MNIST IDX reader and loader on tiny hand-made files."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from nrf.data import DataFormatError, DataNotFoundError, load_mnist, read_idx
from nrf.data.errors import ChecksumError
from nrf.data.mnist import FILES, IMAGE_MAGIC, LABEL_MAGIC

STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX encoding of a uint8 array (magic 0x0803 for 3-D, 0x0801 for 1-D, ...)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(path: Path, payload: bytes, compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def make_split(
    folder: Path,
    split: str = "train",
    n: int = 5,
    *,
    compress: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny valid image/label pair for ``split`` into ``folder``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) + seed) % 10
    img_stem, lab_stem = STEMS[split]
    write(folder / img_stem, idx_bytes(images), compress)
    write(folder / lab_stem, idx_bytes(labels), compress)
    return images, labels.astype(np.uint8)


def test_constants_match_the_idx_format() -> None:
    assert IMAGE_MAGIC == 0x0803
    assert LABEL_MAGIC == 0x0801
    assert set(FILES) == {s for pair in STEMS.values() for s in pair}
    assert FILES["train-images-idx3-ubyte"][1] == 60000
    assert FILES["t10k-labels-idx1-ubyte"][1] == 10000
    assert all(len(md5) == 32 for md5, _ in FILES.values())


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 3, 2, 2)])
def test_read_idx_round_trip(tmp_path: Path, compress: bool, shape: tuple[int, ...]) -> None:
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)[::-1].copy()
    path = write(tmp_path / "f-idx", idx_bytes(array), compress)
    out = read_idx(path)
    assert out.dtype == np.uint8
    assert out.shape == shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_read_idx_checks_expected_magic(tmp_path: Path) -> None:
    path = write(tmp_path / "labels", idx_bytes(np.zeros(3, np.uint8)), compress=False)
    assert read_idx(path, expected_magic=LABEL_MAGIC).shape == (3,)
    with pytest.raises(DataFormatError, match="magic") as info:
        read_idx(path, expected_magic=IMAGE_MAGIC)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_round_trip(tmp_path: Path, split: str, compress: bool) -> None:
    images, labels = make_split(tmp_path / "mnist", split, n=6, compress=compress)
    data = load_mnist(split, root=tmp_path, verify_md5=False)
    assert data.images.shape == (6, 28, 28)
    assert data.images.dtype == np.uint8
    assert data.labels.shape == (6,)
    assert data.labels.dtype == np.uint8
    assert len(data) == 6
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)


def test_files_directly_in_root(tmp_path: Path) -> None:
    images, _ = make_split(tmp_path, "test", n=3, compress=False)
    data = load_mnist("test", root=tmp_path, verify_md5=False)
    np.testing.assert_array_equal(data.images, images)


def test_subdir_beats_files_directly_in_root(tmp_path: Path) -> None:
    make_split(tmp_path, n=2, seed=1)
    make_split(tmp_path / "mnist", n=4, seed=2)
    assert len(load_mnist(root=tmp_path, verify_md5=False)) == 4


def test_gzip_preferred_over_raw(tmp_path: Path) -> None:
    make_split(tmp_path / "mnist", n=2, compress=False)
    make_split(tmp_path / "mnist", n=3, compress=True)
    assert len(load_mnist(root=tmp_path, verify_md5=False)) == 3


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_data_env: Path) -> None:
    explicit, env, cache = tmp_path / "explicit", tmp_path / "env", isolated_data_env
    make_split(explicit / "mnist", n=2)
    make_split(env / "mnist", n=3)
    make_split(cache / "mnist", n=4)
    monkeypatch.setenv("NRF_DATA_DIR", str(env))
    assert len(load_mnist(root=explicit, verify_md5=False)) == 2
    assert len(load_mnist(verify_md5=False)) == 3
    # a root without the files falls through to the next place
    assert len(load_mnist(root=tmp_path / "empty", verify_md5=False)) == 3
    monkeypatch.delenv("NRF_DATA_DIR")
    assert len(load_mnist(verify_md5=False)) == 4


def test_missing_file_lists_paths_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_data_env: Path
) -> None:
    env = tmp_path / "env"
    monkeypatch.setenv("NRF_DATA_DIR", str(env))
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(root=tmp_path / "mine", verify_md5=False)
    assert isinstance(info.value, FileNotFoundError)
    message = info.value.args[0]
    for base in (tmp_path / "mine", env, isolated_data_env):
        assert str(base / "mnist" / "train-images-idx3-ubyte.gz") in message
        assert str(base / "train-images-idx3-ubyte") in message
    assert "nrf data download mnist" in message
    assert len(info.value.tried) == 12
    assert info.value.tried[0] == tmp_path / "mine" / "mnist" / "train-images-idx3-ubyte.gz"


def test_missing_file_str_is_the_message(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(info.value) == info.value.args[0]
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in str(info.value)
    assert "nrf data download mnist" in str(info.value)


def test_missing_labels_file(tmp_path: Path) -> None:
    make_split(tmp_path / "mnist")
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(root=tmp_path, verify_md5=False)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_md5_verified_by_default(tmp_path: Path, compress: bool) -> None:
    make_split(tmp_path / "mnist", compress=compress)
    with pytest.raises(ChecksumError, match="md5") as info:
        load_mnist(root=tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)
    assert str(tmp_path / "mnist") in str(info.value)
    assert info.value.expected == FILES["train-images-idx3-ubyte"][0]
    payload = (tmp_path / "mnist" / "train-images-idx3-ubyte").with_suffix(".gz" if compress else "")
    raw = gzip.decompress(payload.read_bytes()) if compress else payload.read_bytes()
    assert info.value.actual == hashlib.md5(raw).hexdigest()


def _corrupt(tmp_path: Path, which: str, kind: str) -> Path:
    """Write a valid split, then spoil the ``which`` file (``images`` or ``labels``)."""
    folder = tmp_path / "mnist"
    make_split(folder, n=4, compress=False)
    stem = STEMS["train"][0 if which == "images" else 1]
    path = folder / stem
    data = path.read_bytes()
    if kind == "magic":
        other = LABEL_MAGIC if which == "images" else IMAGE_MAGIC
        path.write_bytes(struct.pack(">I", other) + data[4:])
    elif kind == "truncated":
        path.write_bytes(data[:-3])
    elif kind == "padded":
        path.write_bytes(data + b"\x00")
    elif kind == "short-header":
        path.write_bytes(data[:6])
    elif kind == "not-ubyte":
        path.write_bytes(b"\x00\x00\x0d" + data[3:])
    elif kind == "gzip-truncated":
        path.unlink()
        path = path.with_name(stem + ".gz")
        path.write_bytes(gzip.compress(data)[:-12])
    elif kind == "gzip-garbage":
        path.unlink()
        path = path.with_name(stem + ".gz")
        path.write_bytes(b"\x1f\x8b" + b"not a gzip stream at all")
    else:  # pragma: no cover - test bug
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("which", ["images", "labels"])
@pytest.mark.parametrize(
    "kind",
    ["magic", "truncated", "padded", "short-header", "not-ubyte", "gzip-truncated", "gzip-garbage"],
)
def test_corrupt_file_raises_data_format_error(tmp_path: Path, which: str, kind: str) -> None:
    path = _corrupt(tmp_path, which, kind)
    with pytest.raises(DataFormatError) as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert type(info.value) is DataFormatError
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)


def test_truncated_data_message_gives_sizes(tmp_path: Path) -> None:
    _corrupt(tmp_path, "images", "truncated")
    with pytest.raises(DataFormatError, match=r"need 3136 data bytes, file has 3133"):
        load_mnist(root=tmp_path, verify_md5=False)


def test_truncated_gzip_is_not_a_raw_gzip_error(tmp_path: Path) -> None:
    path = _corrupt(tmp_path, "labels", "gzip-truncated")
    with pytest.raises(DataFormatError, match="gzip") as info:
        read_idx(path)
    assert not isinstance(info.value, EOFError)


def test_label_out_of_range(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    make_split(folder, n=4)
    labels = np.array([0, 9, 10, 3], dtype=np.uint8)
    path = write(folder / "train-labels-idx1-ubyte", idx_bytes(labels), compress=True)
    with pytest.raises(DataFormatError, match="0-9") as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(path) in str(info.value)
    assert "10" in str(info.value)


def test_count_mismatch(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    make_split(folder, n=4)
    path = write(folder / "train-labels-idx1-ubyte", idx_bytes(np.arange(3)), compress=True)
    with pytest.raises(DataFormatError, match="3 labels for 4 images") as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(path) in str(info.value)


def test_labels_as_images_wrong_magic(tmp_path: Path) -> None:
    """A label file saved under the image name is refused by its magic number."""
    folder = tmp_path / "mnist"
    make_split(folder, n=4)
    path = write(folder / "train-images-idx3-ubyte", idx_bytes(np.arange(4)), compress=True)
    with pytest.raises(DataFormatError, match=f"expected {IMAGE_MAGIC}, got {LABEL_MAGIC}") as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(path) in str(info.value)


def test_bad_split_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", root=tmp_path, verify_md5=False)


@pytest.mark.parametrize(("rows", "cols"), [(27, 29), (28, 27), (32, 32), (1, 784)])
def test_images_of_another_size(tmp_path: Path, rows: int, cols: int) -> None:
    folder = tmp_path / "mnist"
    make_split(folder, n=3)
    images = np.zeros((3, rows, cols), dtype=np.uint8)
    path = write(folder / "train-images-idx3-ubyte", idx_bytes(images), compress=True)
    with pytest.raises(DataFormatError) as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(path) in str(info.value)
    assert f"MNIST images must be 28 x 28, got {rows} x {cols}" in str(info.value)


def test_zero_images(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    make_split(folder, n=3)
    path = write(folder / "train-images-idx3-ubyte", idx_bytes(np.zeros((0, 28, 28))), compress=False)
    write(folder / "train-labels-idx1-ubyte", idx_bytes(np.zeros(0)), compress=True)
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match="no images") as info:
        load_mnist(root=tmp_path, verify_md5=False)
    assert str(path) in str(info.value)


def test_sizes_whose_product_overflows_int64(tmp_path: Path) -> None:
    """Four sizes of 2**16 multiply to 2**64, 0 in int64 arithmetic: an empty data part
    must not pass as a match."""
    path = tmp_path / "x-idx4-ubyte"
    path.write_bytes(struct.pack(">I", 0x0804) + struct.pack(">4I", *[2**16] * 4))
    with pytest.raises(DataFormatError, match="file has 0") as info:
        read_idx(path)
    assert str(path) in str(info.value)
