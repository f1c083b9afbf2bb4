"""Rows from .npy / .csv files: the training data loader (``data.name = "npy"`` / ``"csv"``),
``nrf score --input`` and the checks of ``data.limit``."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from nrf.cli.main import main
from nrf.cli.train_cmd import _read_rows
from nrf.data import DataFormatError
from nrf.data.tabular import read_rows
from nrf.training.config import ConfigError, DataSection
from nrf.training.data import load_training_data
from training_helpers import write_config


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=True)
    return path


def csv_section(path: Path, **extra: object) -> DataSection:
    return DataSection(name="csv", path=str(path), **extra)  # type: ignore[arg-type]


# --- the training data loader ---------------------------------------------------------


def test_valid_csv_and_npy(tmp_path: Path) -> None:
    rows = write_text(tmp_path / "d.csv", "1,2,3\n\n4,5,6\n7,8,9\n")
    data = load_training_data(csv_section(rows), seed=0)
    assert data.train.shape == (3, 3)
    assert data.train.dtype.is_floating_point
    assert sorted(data.train[:, 0].tolist()) == [1.0, 4.0, 7.0]
    arr = save(tmp_path / "d.npy", np.arange(12, dtype=np.int16).reshape(6, 2))
    data = load_training_data(DataSection(name="npy", path=str(arr)), seed=0)
    assert data.train.shape == (6, 2)
    assert sorted(data.train[:, 1].tolist()) == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]


def test_one_dimensional_npy_is_one_value_per_row(tmp_path: Path) -> None:
    arr = save(tmp_path / "d.npy", np.array([0.5, 1.5, 2.5]))
    data = load_training_data(DataSection(name="npy", path=str(arr)), seed=0)
    assert data.train.shape == (3, 1)


@pytest.mark.parametrize(
    ("text", "line", "expected", "got"),
    [
        ("1,2,3\n4,5\n6,7,8\n", 2, 3, 2),
        ("1,2\n3,4\n\n5,6,7\n", 4, 2, 3),
        ("1\n2\n3,4\n", 3, 1, 2),
    ],
)
def test_ragged_csv_names_the_file_and_the_first_bad_line(
    tmp_path: Path, text: str, line: int, expected: int, got: int
) -> None:
    path = write_text(tmp_path / "ragged.csv", text)
    with pytest.raises(ConfigError) as info:
        load_training_data(csv_section(path), seed=0)
    message = str(info.value)
    assert message.startswith(f"data.path: {path}: ")
    assert f"line {line}: expected {expected} fields (as on line 1), got {got}" in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("1,2\n3,x\n", "line 2, field 2: not a number: 'x'"),
        ("a,1\n1,2\n", "line 1, field 1"),  # a header names every field, no numbers
        ("1,2\n3,\n", "line 2"),
    ],
)
def test_non_numeric_csv(tmp_path: Path, text: str, where: str) -> None:
    path = write_text(tmp_path / "d.csv", text)
    with pytest.raises(ConfigError, match=where) as info:
        load_training_data(csv_section(path), seed=0)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "no rows"),
        (b"\n\n  \n", "line 3, field 1: not a number"),
        (b"1,2\n\xff\xfe,3\n", "not a UTF-8 text file"),
        (b"1,2\n3,\x004\n", r"line 2, field 2: not a number: '\\x004'"),
        (b"1,2\n" + b"9" * 200_000 + b"\n", "line 2: not valid CSV .*field larger than field limit"),
    ],
    ids=["empty", "blank", "binary", "nul", "huge-field"],
)
def test_unreadable_csv(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=match) as info:
        load_training_data(csv_section(path), seed=0)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.array(3.0), r"at least 1 dimensions .* got shape \(\)"),
        (np.ones((4, 2), dtype=np.complex64), "got dtype complex64"),
        (np.ones((4, 2), dtype=bool), "got dtype bool"),
        (np.array([["a", "b"]]), "got dtype <U1"),
        (np.array([[1, "x"]], dtype=object), "got dtype object"),
        (np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]), "got dtype"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "got dtype datetime64"),
        (np.zeros((0, 3)), r"no rows \(shape \(0, 3\)\)"),
        (np.zeros((4, 0)), r"no values \(shape \(4, 0\)\)"),
        (np.array([[1.0, 1e300]]), "row 1: value 1e\\+300 is beyond the float32 range"),
    ],
    ids=[
        "0-d",
        "complex",
        "bool",
        "str",
        "object",
        "structured",
        "datetime",
        "no-rows",
        "no-columns",
        "1e300",
    ],
)
def test_bad_npy_training_data(tmp_path: Path, array: np.ndarray, match: str) -> None:
    path = save(tmp_path / "d.npy", array)
    with pytest.raises(ConfigError, match=match) as info:
        load_training_data(DataSection(name="npy", path=str(path)), seed=0)
    assert str(info.value).startswith(f"data.path: {path}: ")


@pytest.mark.parametrize("kind", ["npz", "pickle", "truncated", "padded", "garbage"])
def test_files_that_are_not_npy(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "d.npy"
    good = tmp_path / "good.npy"
    np.save(good, np.arange(6.0).reshape(3, 2))
    if kind == "npz":
        np.savez(tmp_path / "d.npz", a=np.zeros(3))
        (tmp_path / "d.npz").rename(path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(np.zeros((3, 2))))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:-5])
    elif kind == "padded":
        path.write_bytes(good.read_bytes() + b"\0")
    else:
        path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': 'x'}\n")
    with pytest.raises(ConfigError) as info:
        load_training_data(DataSection(name="npy", path=str(path)), seed=0)
    assert str(info.value).startswith(f"data.path: {path}: ")


def test_non_finite_values_name_the_file(tmp_path: Path) -> None:
    path = save(tmp_path / "d.npy", np.array([[1.0, 2.0], [2.0, np.nan]]))
    with pytest.raises(
        ValueError, match=r"1 non-finite values \(NaN or inf\); the first is in row 1"
    ) as info:
        load_training_data(DataSection(name="npy", path=str(path)), seed=0)
    assert str(info.value).startswith(f"data.path {path} holds ")
    rows = write_text(tmp_path / "d.csv", "1,2\n1e999,3\n")  # parses as inf
    with pytest.raises(ValueError, match="non-finite") as info:
        load_training_data(csv_section(rows), seed=0)
    assert str(rows) in str(info.value)


def test_python2_npy_header_loads_without_a_warning(tmp_path: Path) -> None:
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 2L), }"
    header += b" " * (117 - len(header)) + b"\n"
    path = tmp_path / "d.npy"
    path.write_bytes(
        b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + np.arange(6.0).tobytes()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_training_data(DataSection(name="npy", path=str(path)), seed=0)
    assert data.train.shape == (3, 2)


@pytest.mark.parametrize("limit", [0, -1, -100])
def test_data_limit_must_be_at_least_one(tmp_path: Path, limit: int) -> None:
    path = write_text(tmp_path / "d.csv", "1,2\n3,4\n5,6\n")
    with pytest.raises(ValueError, match=rf"^data.limit: expected >= 1 \(or unset\), got {limit}$"):
        load_training_data(csv_section(path, limit=limit), seed=0)
    with pytest.raises(ValueError, match=r"data\.limit: expected >= 1"):
        load_training_data(DataSection(name="gmm32", limit=limit), seed=0)


def test_data_limit_keeps_that_many_rows(tmp_path: Path) -> None:
    path = write_text(tmp_path / "d.csv", "1,2\n3,4\n5,6\n")
    assert load_training_data(csv_section(path, limit=2), seed=0).train.shape == (2, 2)
    assert load_training_data(csv_section(path, limit=10), seed=0).train.shape == (3, 2)


def test_a_split_without_training_rows(tmp_path: Path) -> None:
    path = write_text(tmp_path / "d.csv", "1,2\n3,4\n5,6\n")
    with pytest.raises(ConfigError, match="leaves no training rows out of 1"):
        load_training_data(csv_section(path, limit=1, validation_fraction=0.9), seed=0)


def test_train_with_limit_zero_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    assert main(["train", str(cfg), "--set", "data.limit=0"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["nrf train: error: data.limit: expected >= 1 (or unset), got 0"]


def test_train_with_a_ragged_csv_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = write_text(tmp_path / "d.csv", "1,2\n3,4\n5\n")
    cfg = write_config(tmp_path, data="csv", data_extra=f'path = "{rows}"')
    assert main(["train", str(cfg)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0] == f"nrf train: error: data.path: {rows}: line 3: expected 2 fields (as on line 1), got 1"


# --- nrf score --input ------------------------------------------------------------------


def score_error(path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> str:
    """Run ``nrf score`` on ``path`` (the run is never reached) and return its one error line."""
    assert main(["score", str(tmp_path / "no-such-run"), "--input", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"nrf score: error: --input: {path}: ")
    return lines[0]


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array(2.0), r"at least 2 dimensions \(rows, features...\), got shape \(\)"),
        (np.arange(5.0), r"at least 2 dimensions \(rows, features...\), got shape \(5,\)"),
        (np.ones((3, 2), dtype=np.complex128), "expected real numbers .* got dtype complex128"),
        (np.ones((3, 2), dtype=bool), "got dtype bool"),
        (np.array([[1, None]], dtype=object), "got dtype object"),
        (np.array([["1", "2"]]), "got dtype <U1"),
        (np.zeros((0, 2)), r"no rows \(shape \(0, 2\)\)"),
        (np.zeros((2, 0)), r"no values \(shape \(2, 0\)\)"),
        (
            np.array([[1.0, np.inf], [np.nan, 0.0], [0.0, 0.0]]),
            r"2 row\(s\) hold NaN or inf \(first: row 1\)",
        ),
        (np.array([[0.0, 0.0], [1e39, 0.0]]), "row 2: value 1e\\+39 is beyond the float32 range"),
    ],
    ids=["0-d", "1-d", "complex", "bool", "object", "str", "no-rows", "no-columns", "nan", "overflow"],
)
def test_score_input_npy_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], array: np.ndarray, expected: str
) -> None:
    path = save(tmp_path / "x.npy", array)
    line = score_error(path, capsys, tmp_path)
    assert re.search(expected, line), line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2\n3\n", "line 2: expected 2 fields (as on line 1), got 1"),
        ("1,2\n1+2j,3\n", "line 2, field 1: not a number: '1+2j'"),
        ("", "no rows"),
        ("1,2\nnan,3\n", "1 row(s) hold NaN or inf (first: line 2)"),
    ],
)
def test_score_input_csv_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = write_text(tmp_path / "x.csv", text)
    assert expected in score_error(path, capsys, tmp_path)


def test_score_input_other_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be a \.npy or \.csv file, got x\.txt"):
        _read_rows(write_text(tmp_path / "x.txt", "1,2\n"))
    with pytest.raises(FileNotFoundError, match="--input: file not found"):
        _read_rows(tmp_path / "none.npy")


def test_score_input_valid(tmp_path: Path) -> None:
    rows = _read_rows(save(tmp_path / "x.npy", np.arange(6, dtype=np.int64).reshape(3, 2)))
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, np.arange(6, dtype=np.float32).reshape(3, 2))
    images = _read_rows(save(tmp_path / "i.npy", np.zeros((2, 1, 4, 4), dtype=np.uint8)))
    assert images.shape == (2, 1, 4, 4)
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(_read_rows(save(tmp_path / "f.npy", fortran)), fortran)
    big_endian = np.arange(4.0).reshape(2, 2).astype(">f8")
    np.testing.assert_array_equal(_read_rows(save(tmp_path / "b.npy", big_endian)), big_endian)
    csv_rows = _read_rows(write_text(tmp_path / "x.csv", "1, 2\n\n-3e2,4.5\n"))
    np.testing.assert_array_equal(csv_rows, np.array([[1, 2], [-300, 4.5]], dtype=np.float32))


def test_read_rows_bad_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fmt must be one of \['npy', 'csv'\], got 'txt'"):
        read_rows(tmp_path / "x", "txt")


def test_reader_errors_are_data_format_errors(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", "1,2\n3\n")
    with pytest.raises(DataFormatError) as info:
        read_rows(path, "csv")
    assert info.value.source == str(path)


def test_a_csv_header_line_is_skipped(tmp_path: Path) -> None:
    path = write_text(tmp_path / "d.csv", "width,height\n1,2\n3,4\n")
    np.testing.assert_array_equal(read_rows(path, "csv"), np.array([[1, 2], [3, 4]], dtype=np.float32))
    with pytest.raises(DataFormatError, match="line 3: expected 2 fields"):
        read_rows(write_text(tmp_path / "e.csv", "a,b\n1,2\n3\n"), "csv")
    with pytest.raises(DataFormatError, match="header only"):
        read_rows(write_text(tmp_path / "f.csv", "a,b\n"), "csv")
