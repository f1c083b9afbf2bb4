"""KDDCUP99 loader and DAGMM-style encoding on a tiny generated CSV."""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nrf.data import ChecksumError, DataFormatError, DataNotFoundError, load_kddcup99
from nrf.data.kddcup import (
    BINARY_COLUMNS,
    CATEGORICAL,
    CATEGORIES,
    COLUMNS,
    COUNT_COLUMNS,
    FLAGS,
    PROTOCOL_TYPES,
    RATE_COLUMNS,
    SERVICES,
)

NUMERIC = tuple(c for c in COLUMNS if c not in CATEGORICAL)
WIDTH = 38 + 3 + 66 + 11
VOCAB = {
    "protocol_type": ("tcp", "udp", "icmp"),
    "service": ("http", "smtp", "private", "ecr_i"),
    "flag": ("SF", "S0", "REJ"),
}
ATTACKS = ("smurf.", "neptune.", "back.")
N_ROWS = 30


@dataclass
class Table:
    numeric: np.ndarray  # (n, 38) float64, the values written
    categorical: dict[str, list[str]]
    labels: list[str]
    lines: list[str]

    @property
    def anomaly(self) -> np.ndarray:
        return np.array([lab == "normal." for lab in self.labels])


def make_table(n: int = N_ROWS, seed: int = 0) -> Table:
    """``n`` valid rows; every third row is "normal." (the anomaly class) with wider value
    ranges: counts in [20, 80) for the inliers, [0, 300) for the anomalies; rates in
    [0.2, 0.8) and [0, 1]; the 0/1 columns alternate."""
    rng = np.random.default_rng(seed)
    labels = ["normal." if i % 3 == 0 else ATTACKS[i % len(ATTACKS)] for i in range(n)]
    anomaly = np.array([lab == "normal." for lab in labels])
    numeric = rng.integers(20, 80, size=(n, len(NUMERIC))).astype(np.float64)
    numeric[anomaly] = rng.integers(0, 300, size=(int(anomaly.sum()), len(NUMERIC)))
    for j, name in enumerate(NUMERIC):
        if name in RATE_COLUMNS:
            numeric[:, j] = np.round(np.minimum(numeric[:, j], 100) / 100, 2)
        elif name in BINARY_COLUMNS:
            numeric[:, j] = np.arange(n) % 2
    numeric[:, NUMERIC.index("num_outbound_cmds")] = 0.0  # constant everywhere
    numeric[:, NUMERIC.index("land")] = anomaly.astype(float)  # constant among the inliers
    categorical = {
        c: [VOCAB[c][(i // (k + 1)) % len(VOCAB[c])] for i in range(n)] for k, c in enumerate(VOCAB)
    }
    lines = []
    for i in range(n):
        num = iter(numeric[i])
        fields = [categorical[c][i] if c in CATEGORICAL else f"{next(num):g}" for c in COLUMNS]
        lines.append(",".join([*fields, labels[i]]))
    return Table(numeric, categorical, labels, lines)


def write_csv(folder: Path, lines: list[str], *, compress: bool = True, name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = ("\n".join(lines) + "\n").encode("ascii")
    if compress:
        path = folder / (name or "kddcup.data_10_percent.gz")
        path.write_bytes(gzip.compress(text))
    else:
        path = folder / (name or "kddcup.data_10_percent")
        path.write_bytes(text)
    return path


@pytest.fixture
def table() -> Table:
    return make_table()


def non_constant(values: np.ndarray) -> np.ndarray:
    return values.max(axis=0) > values.min(axis=0)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_shapes_names_and_labels(tmp_path: Path, table: Table, compress: bool) -> None:
    write_csv(tmp_path / "kddcup99", table.lines, compress=compress)
    data = load_kddcup99(tmp_path)
    assert data.features.shape == (N_ROWS, WIDTH)
    assert data.features.dtype == np.float32
    assert len(data) == N_ROWS
    assert data.feature_names[:38] == NUMERIC
    assert data.feature_names[38:41] == ("protocol_type=icmp", "protocol_type=tcp", "protocol_type=udp")
    assert data.feature_names[41] == "service=IRC"
    assert data.feature_names[-1] == "flag=SH"
    assert len(data.feature_names) == WIDTH
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, table.anomaly.astype(np.int64))
    assert data.labels.sum() == 10
    assert list(data.raw_labels) == table.labels


def test_gzip_and_raw_give_the_same_result(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "a", table.lines, compress=True)
    write_csv(tmp_path / "b", table.lines, compress=False)
    a, b = load_kddcup99(tmp_path / "a"), load_kddcup99(tmp_path / "b")
    np.testing.assert_array_equal(a.features, b.features)


def test_one_hot_blocks(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    data = load_kddcup99(tmp_path)
    names = data.feature_names
    for c in CATEGORICAL:
        cols = [j for j, name in enumerate(names) if name.startswith(f"{c}=")]
        assert len(cols) == len(CATEGORIES[c])
        assert [names[j] for j in cols] == [f"{c}={v}" for v in CATEGORIES[c]]
        block = data.features[:, cols]
        assert set(np.unique(block).tolist()) == {0.0, 1.0}
        np.testing.assert_array_equal(block.sum(axis=1), np.ones(N_ROWS))
        hot = [names[cols[k]].split("=", 1)[1] for k in block.argmax(axis=1)]
        assert hot == table.categorical[c]
        # only the columns of the values present are ever hot
        used = {f"{c}={v}" for v in VOCAB[c]}
        assert {names[cols[k]] for k in np.flatnonzero(block.sum(axis=0))} == used


def test_inlier_scaling(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    data = load_kddcup99(tmp_path)  # scale="inliers" is the default
    inl = ~table.anomaly
    num = data.features[:, :38]
    assert num[inl].min() >= 0.0
    assert num[inl].max() <= 1.0
    varying = non_constant(table.numeric[inl])
    assert varying.sum() == 36  # all but num_outbound_cmds and land
    np.testing.assert_allclose(num[inl][:, varying].min(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(num[inl][:, varying].max(axis=0), 1.0, atol=1e-6)
    lo, hi = table.numeric[inl].min(axis=0), table.numeric[inl].max(axis=0)
    expected = (table.numeric[:, varying] - lo[varying]) / (hi - lo)[varying]
    np.testing.assert_allclose(num[:, varying], expected, rtol=1e-5, atol=1e-6)
    # the anomaly rows are scaled with the inliers' statistics and may leave [0, 1]
    assert num[~inl].max() > 1.0
    assert num[~inl].min() < 0.0


def test_scale_none_returns_raw_numbers(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    data = load_kddcup99(tmp_path, scale="none")
    np.testing.assert_array_equal(data.features[:, :38], table.numeric.astype(np.float32))
    assert data.features[:, :38].max() > 100


def test_scale_all(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    num = load_kddcup99(tmp_path, scale="all").features[:, :38]
    varying = non_constant(table.numeric)
    assert num.min() >= 0.0
    assert num.max() <= 1.0
    np.testing.assert_allclose(num[:, varying].min(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(num[:, varying].max(axis=0), 1.0, atol=1e-6)


@pytest.mark.parametrize("kind", ["indices", "mask", "list"])
def test_scale_rows(tmp_path: Path, table: Table, kind: str) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    fit = np.arange(5, 17)
    mask = np.zeros(N_ROWS, dtype=bool)
    mask[fit] = True
    fit_rows = {"indices": fit, "mask": mask, "list": fit.tolist()}[kind]
    num = load_kddcup99(tmp_path, scale="rows", fit_rows=fit_rows).features[:, :38]
    lo, hi = table.numeric[fit].min(axis=0), table.numeric[fit].max(axis=0)
    varying = hi > lo
    assert num[fit].min() >= 0.0
    assert num[fit].max() <= 1.0
    np.testing.assert_allclose(num[fit][:, varying].min(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(num[fit][:, varying].max(axis=0), 1.0, atol=1e-6)
    expected = (table.numeric[:, varying] - lo[varying]) / (hi - lo)[varying]
    np.testing.assert_allclose(num[:, varying], expected, rtol=1e-5, atol=1e-6)


def test_scale_rows_needs_fit_rows(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    with pytest.raises(ValueError, match="fit_rows"):
        load_kddcup99(tmp_path, scale="rows")
    with pytest.raises(ValueError, match="fit_rows"):
        load_kddcup99(tmp_path, scale="inliers", fit_rows=[0, 1])
    with pytest.raises(ValueError, match="scale"):
        load_kddcup99(tmp_path, scale="minmax")


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize(("row", "change"), [(1, "drop"), (7, "drop"), (30, "drop"), (12, "extra")])
def test_wrong_field_count_names_file_and_row(
    tmp_path: Path, table: Table, compress: bool, row: int, change: str
) -> None:
    lines = list(table.lines)
    fields = lines[row - 1].split(",")
    fields = fields[:-1] if change == "drop" else [*fields, "0"]
    lines[row - 1] = ",".join(fields)
    path = write_csv(tmp_path / "kddcup99", lines, compress=compress)
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"row {row}:" in message
    assert f"got {len(fields)}" in message


def test_blank_line_in_the_middle_is_reported(tmp_path: Path, table: Table) -> None:
    lines = [*table.lines[:3], "", *table.lines[3:]]
    path = write_csv(tmp_path / "kddcup99", lines, compress=False)
    with pytest.raises(DataFormatError, match="row 4:") as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("row", "column"), [(5, "src_bytes"), (1, "duration"), (30, "dst_host_srv_rerror_rate")]
)
def test_non_numeric_value_names_row_and_column(tmp_path: Path, table: Table, row: int, column: str) -> None:
    lines = list(table.lines)
    fields = lines[row - 1].split(",")
    fields[COLUMNS.index(column)] = "abc"
    lines[row - 1] = ",".join(fields)
    path = write_csv(tmp_path / "kddcup99", lines)
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"row {row}:" in message
    assert repr(column) in message
    assert "'abc'" in message


def test_non_finite_value(tmp_path: Path, table: Table) -> None:
    lines = list(table.lines)
    fields = lines[8].split(",")
    fields[COLUMNS.index("count")] = "inf"
    lines[8] = ",".join(fields)
    write_csv(tmp_path / "kddcup99", lines)
    with pytest.raises(DataFormatError, match="row 9: non-finite"):
        load_kddcup99(tmp_path)


@pytest.mark.parametrize(("column", "value"), [("src_bytes", "1_000"), ("src_bytes", "#12")])
def test_odd_values_give_data_format_error(tmp_path: Path, table: Table, column: str, value: str) -> None:
    lines = list(table.lines)
    fields = lines[3].split(",")
    fields[COLUMNS.index(column)] = value
    lines[3] = ",".join(fields)
    path = write_csv(tmp_path / "kddcup99", lines)
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)
    assert "row 4" in str(info.value)


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path: Path, table: Table) -> None:
    folder = tmp_path / "kddcup99"
    folder.mkdir()
    (folder / "kddcup.data_10_percent").write_bytes(("\r\n".join(table.lines) + "\r\n\r\n\n").encode())
    data = load_kddcup99(tmp_path)
    assert len(data) == N_ROWS
    assert list(data.raw_labels) == table.labels


def test_empty_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "kddcup99", [""], compress=False)
    with pytest.raises(DataFormatError, match="no rows") as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)


def test_non_ascii_file(tmp_path: Path, table: Table) -> None:
    folder = tmp_path / "kddcup99"
    folder.mkdir()
    path = folder / "kddcup.data_10_percent"
    path.write_bytes(table.lines[0].replace("http", "htt\xe9").encode("latin-1"))
    with pytest.raises(DataFormatError, match="ASCII") as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)


def test_truncated_gzip(tmp_path: Path, table: Table) -> None:
    path = write_csv(tmp_path / "kddcup99", table.lines)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="gzip") as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)


def test_file_names_and_places(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path, table.lines[:4], compress=False, name="kddcup.data_10_percent_corrected")
    assert len(load_kddcup99(tmp_path)) == 4
    write_csv(tmp_path / "kddcup99", table.lines[:6], compress=False)
    assert len(load_kddcup99(tmp_path)) == 6
    write_csv(tmp_path / "kddcup99", table.lines[:8], compress=True)
    assert len(load_kddcup99(tmp_path)) == 8


def test_env_var_root(tmp_path: Path, table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(tmp_path / "env" / "kddcup99", table.lines[:5])
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path / "env"))
    assert len(load_kddcup99()) == 5


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load_kddcup99(tmp_path)
    message = info.value.args[0]
    assert str(tmp_path / "kddcup99" / "kddcup.data_10_percent.gz") in message
    assert "nrf data download kddcup99" in message


def test_sha256_verification(tmp_path: Path, table: Table) -> None:
    path = write_csv(tmp_path / "kddcup99", table.lines)
    with pytest.raises(ChecksumError, match="sha256") as info:
        load_kddcup99(tmp_path, verify_sha256=True)
    assert str(path) in str(info.value)
    assert len(load_kddcup99(tmp_path, verify_sha256=False)) == N_ROWS


def set_field(lines: list[str], row: int, column: str, value: str) -> list[str]:
    """A copy of ``lines`` with ``column`` of 1-based ``row`` replaced by ``value``."""
    out = list(lines)
    fields = out[row - 1].split(",")
    fields[COLUMNS.index(column) if column != "label" else -1] = value
    out[row - 1] = ",".join(fields)
    return out


def test_canonical_category_lists() -> None:
    assert len(PROTOCOL_TYPES) == 3
    assert len(SERVICES) == 66
    assert len(FLAGS) == 11
    for values in CATEGORIES.values():
        assert isinstance(values, tuple)
        assert list(values) == sorted(set(values))
    assert len(NUMERIC) + sum(len(v) for v in CATEGORIES.values()) == WIDTH
    assert set(RATE_COLUMNS) | set(BINARY_COLUMNS) | set(COUNT_COLUMNS) == set(NUMERIC)
    assert len(RATE_COLUMNS) + len(BINARY_COLUMNS) + len(COUNT_COLUMNS) == 38


def one_hot(features: np.ndarray) -> np.ndarray:
    return features[:, 38:]


def test_a_file_in_the_corrected_format_encodes_to_the_same_columns(tmp_path: Path, table: Table) -> None:
    """A second file (like the ``corrected`` test file: same 42 fields, labels with a
    trailing dot) that holds only some of the categories, the first of them in another
    order of appearance, gets the same columns, each value hot in the same position."""
    write_csv(tmp_path / "a" / "kddcup99", table.lines)
    full = load_kddcup99(tmp_path / "a")
    # drop every "smtp" row and every "REJ" row, and put the rows in reverse order
    keep = [
        i
        for i in range(N_ROWS)
        if table.categorical["service"][i] != "smtp" and table.categorical["flag"][i] != "REJ"
    ][::-1]
    second = [table.lines[i] for i in keep]
    assert {line.split(",")[2] for line in second} == {"http", "private", "ecr_i"}
    assert second[0].split(",")[1] != table.categorical["protocol_type"][0]
    write_csv(tmp_path / "b", second, compress=False, name="kddcup.data_10_percent_corrected")
    subset = load_kddcup99(tmp_path / "b")
    assert subset.feature_names == full.feature_names
    assert subset.features.shape == (len(keep), WIDTH)
    np.testing.assert_array_equal(one_hot(subset.features), one_hot(full.features)[keep])
    assert list(subset.raw_labels) == [table.labels[i] for i in keep]


@pytest.mark.parametrize(
    ("column", "value", "known"), [("service", "aol", 66), ("flag", "XX", 11), ("protocol_type", "sctp", 3)]
)
def test_unknown_category_is_an_error_by_default(
    tmp_path: Path, table: Table, column: str, value: str, known: int
) -> None:
    path = write_csv(tmp_path / "kddcup99", set_field(table.lines, 7, column, value))
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert "row 7:" in message
    assert repr(column) in message
    assert repr(value) in message
    assert f"{known} known values" in message


def test_unknown_category_ignored_gives_an_all_zero_block_and_a_warning(tmp_path: Path, table: Table) -> None:
    lines = set_field(table.lines, 7, "service", "aol")
    lines = set_field(lines, 9, "service", "aol")
    lines = set_field(lines, 9, "flag", "XX")
    path = write_csv(tmp_path / "kddcup99", lines)
    with pytest.warns(UserWarning, match="outside the known categories") as record:
        data = load_kddcup99(tmp_path, unknown="ignore")
    (warning,) = record
    message = str(warning.message)
    assert str(path) in message
    assert "2 row(s)" in message
    assert "service='aol' (2 rows)" in message
    assert "flag='XX' (1 row)" in message
    write_csv(tmp_path / "ref" / "kddcup99", table.lines)
    clean = load_kddcup99(tmp_path / "ref")
    assert data.feature_names == clean.feature_names
    names = np.array(data.feature_names)
    service = np.char.startswith(names, "service=")
    flag = np.char.startswith(names, "flag=")
    assert data.features[6, service].sum() == 0.0
    assert data.features[8, service].sum() == 0.0
    assert data.features[8, flag].sum() == 0.0
    assert data.features[6, flag].sum() == 1.0
    others = np.setdiff1d(np.arange(N_ROWS), [6, 8])
    np.testing.assert_array_equal(data.features[others], clean.features[others])


def test_no_warning_when_nothing_is_ignored(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_kddcup99(tmp_path, unknown="ignore")
    np.testing.assert_array_equal(one_hot(data.features).sum(axis=1), np.full(N_ROWS, 3.0))


def test_bad_unknown_choice(tmp_path: Path, table: Table) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    with pytest.raises(ValueError, match=r"unknown must be one of \['error', 'ignore'\], got 'skip'"):
        load_kddcup99(tmp_path, unknown="skip")


@pytest.mark.parametrize("label", ["normal", "smurf", ".", ""])
def test_label_without_the_trailing_dot(tmp_path: Path, table: Table, label: str) -> None:
    path = write_csv(tmp_path / "kddcup99", set_field(table.lines, 4, "label", label))
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"row 4: label {label!r} does not end in '.'" in message


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("src_bytes", "-5", "a count"),
        ("dst_bytes", "-1", "a count"),
        ("duration", "-3", "a count"),
        ("count", "2.5", "a count"),
        ("serror_rate", "1.5", "a rate in [0, 1]"),
        ("dst_host_srv_rerror_rate", "-0.01", "a rate in [0, 1]"),
        ("land", "2", "0 or 1"),
        ("logged_in", "0.5", "0 or 1"),
    ],
)
def test_value_out_of_its_column_range(
    tmp_path: Path, table: Table, column: str, value: str, rule: str
) -> None:
    lines = set_field(table.lines, 11, column, value)
    lines = set_field(lines, 20, "src_bytes", "-7")  # a later bad row is not the one reported
    path = write_csv(tmp_path / "kddcup99", lines)
    with pytest.raises(DataFormatError) as info:
        load_kddcup99(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"row 11: column {column!r} must be {rule}" in message
    assert message.endswith(f"got {value}")


@pytest.mark.parametrize(
    ("fit_rows", "match"),
    [
        ([0, 30], r"fit_rows must be row indices in \[0, 30\)"),
        ([-1, 2], r"fit_rows must be row indices in \[0, 30\)"),
        (np.ones(29, dtype=bool), r"one entry per row \(30\), got 29"),
        ([0.5, 1.0], "dtype float64"),
        ([[0, 1]], "1-D"),
    ],
)
def test_bad_fit_rows(tmp_path: Path, table: Table, fit_rows: object, match: str) -> None:
    write_csv(tmp_path / "kddcup99", table.lines)
    with pytest.raises(ValueError, match=match):
        load_kddcup99(tmp_path, scale="rows", fit_rows=fit_rows)  # type: ignore[arg-type]


def test_no_inlier_rows_to_scale_with(tmp_path: Path, table: Table) -> None:
    lines = [line.rpartition(",")[0] + ",normal." for line in table.lines]
    path = write_csv(tmp_path / "kddcup99", lines)
    with pytest.raises(DataFormatError, match="no inlier rows to scale with") as info:
        load_kddcup99(tmp_path)
    assert str(path) in str(info.value)
    assert load_kddcup99(tmp_path, scale="all").labels.sum() == N_ROWS


def test_data_unknown_reaches_the_loader_from_a_run_config(tmp_path: Path, table: Table) -> None:
    from nrf.registry import ConfigError
    from nrf.training.config import Config, DataSection, validate
    from nrf.training.data import load_training_data

    write_csv(tmp_path / "kddcup99", set_field(table.lines, 7, "service", "aol"))
    section = DataSection(name="kddcup99", root=str(tmp_path))
    with pytest.raises(DataFormatError, match="'aol'"):
        load_training_data(section, 0)
    section.unknown = "ignore"
    with pytest.warns(UserWarning, match="outside the known categories"):
        data = load_training_data(section, 0)
    assert data.train.shape[1] == 118
    with pytest.raises(ConfigError, match=r"data.unknown: expected 'error' or 'ignore', got 'skip'"):
        validate(Config(data=DataSection(name="kddcup99", unknown="skip")))
