"""KDDCUP99 loader and DAGMM-style encoding on a tiny generated CSV."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from nrf.data import ChecksumError, DataFormatError, DataNotFoundError, load_kddcup99
from nrf.data.kddcup import CATEGORICAL, COLUMNS

NUMERIC = tuple(c for c in COLUMNS if c not in CATEGORICAL)
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
    """``n`` rows; every third row is "normal." (the anomaly class) with wider value ranges."""
    rng = np.random.default_rng(seed)
    labels = ["normal." if i % 3 == 0 else ATTACKS[i % len(ATTACKS)] for i in range(n)]
    anomaly = np.array([lab == "normal." for lab in labels])
    numeric = rng.integers(0, 100, size=(n, len(NUMERIC))).astype(np.float64)
    numeric[anomaly] = rng.integers(-50, 300, size=(int(anomaly.sum()), len(NUMERIC)))
    for j, name in enumerate(NUMERIC):
        if name.endswith("_rate"):
            numeric[:, j] = np.round(numeric[:, j] / 100, 2)
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
    width = len(NUMERIC) + sum(len(v) for v in VOCAB.values())
    assert width == 38 + 10
    assert data.features.shape == (N_ROWS, width)
    assert data.features.dtype == np.float32
    assert len(data) == N_ROWS
    assert data.feature_names[:38] == NUMERIC
    assert data.feature_names[38:41] == ("protocol_type=icmp", "protocol_type=tcp", "protocol_type=udp")
    assert len(data.feature_names) == width
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
        assert len(cols) == len(VOCAB[c])
        assert [names[j] for j in cols] == [f"{c}={v}" for v in sorted(VOCAB[c])]
        block = data.features[:, cols]
        assert set(np.unique(block).tolist()) == {0.0, 1.0}
        np.testing.assert_array_equal(block.sum(axis=1), np.ones(N_ROWS))
        hot = [names[cols[k]].split("=", 1)[1] for k in block.argmax(axis=1)]
        assert hot == table.categorical[c]


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
