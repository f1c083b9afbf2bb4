"""KDDCUP99 (10 % file) with the DAGMM preprocessing used by Inclusive-NRF Table IV.

Encoding
--------
Each row of ``kddcup.data_10_percent(.gz)`` has 41 features and a label ending in ".".

* ``protocol_type`` (3 values), ``service`` (66) and ``flag`` (11) are one-hot encoded
  against fixed category lists, :data:`PROTOCOL_TYPES`, :data:`SERVICES` and
  :data:`FLAGS` (the values of the 10 % file, sorted), columns named
  ``protocol_type=tcp`` etc. The columns therefore never depend on which values a file
  happens to hold: a file with a subset of the categories, or with them in another
  order (such as the ``corrected`` test file), encodes to the same 118 columns. A value
  outside the lists (the full data set has a few more services, e.g. ``aol`` or
  ``http_8001``) is an error by default; ``unknown="ignore"`` encodes it as an all-zero
  block and warns;
* the other 38 columns are numeric and min-max scaled to [0, 1] with the minimum and
  maximum of the *fitting rows* only (by default the rows the detector trains on: those
  whose label is not ``"normal."``); a column constant on those rows is shifted to 0
  there (scikit-learn's ``MinMaxScaler`` convention) and not rescaled;
* the label ``"normal."`` is the **anomaly** class (1), about 19.7 % of rows, because it is
  the minority in this file; every attack type is the "normal" class (0).

That gives 38 + 3 + 66 + 11 = **118** features. The Inclusive-NRF and DAGMM papers say
120; the 10 % file cannot produce 120 columns with this encoding (the authors' own code
uses ``data_size=118``), so we keep the count that the data gives.

Validation
----------
Besides the field count and numbers that parse, every row must satisfy the data set's
definitions: the ``*_rate`` columns lie in [0, 1], the 0/1 indicator columns
(:data:`BINARY_COLUMNS`) are 0 or 1, every other numeric column is a count (a whole
number >= 0), and every label ends in "." (a bare ``normal`` would otherwise count as an
attack). A violation raises :class:`DataFormatError` naming the file, the row, the column
and the value.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nrf._checks import check_choice
from nrf.data._io import read_bytes, verify
from nrf.data.errors import DataFormatError
from nrf.data.paths import find_file

SUBDIR = "kddcup99"
FILENAMES = ("kddcup.data_10_percent.gz", "kddcup.data_10_percent", "kddcup.data_10_percent_corrected")
SHA256_GZ = "7bfaa8cef1350f72842018c32893e2fa4539d57efbb22f998eb74ecefc3da3b4"
ANOMALY_LABEL = "normal."

COLUMNS = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
CATEGORICAL = ("protocol_type", "service", "flag")
N_FIELDS = len(COLUMNS) + 1

#: The category lists of the one-hot blocks: every value of the 10 % file, sorted.
PROTOCOL_TYPES = ("icmp", "tcp", "udp")
SERVICES = (
    "IRC", "X11", "Z39_50", "auth", "bgp", "courier", "csnet_ns", "ctf", "daytime", "discard",
    "domain", "domain_u", "echo", "eco_i", "ecr_i", "efs", "exec", "finger", "ftp", "ftp_data",
    "gopher", "hostnames", "http", "http_443", "imap4", "iso_tsap", "klogin", "kshell", "ldap",
    "link", "login", "mtp", "name", "netbios_dgm", "netbios_ns", "netbios_ssn", "netstat", "nnsp",
    "nntp", "ntp_u", "other", "pm_dump", "pop_2", "pop_3", "printer", "private", "red_i",
    "remote_job", "rje", "shell", "smtp", "sql_net", "ssh", "sunrpc", "supdup", "systat", "telnet",
    "tftp_u", "tim_i", "time", "urh_i", "urp_i", "uucp", "uucp_path", "vmnet", "whois",
)  # fmt: skip
FLAGS = ("OTH", "REJ", "RSTO", "RSTOS0", "RSTR", "S0", "S1", "S2", "S3", "SF", "SH")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "protocol_type": PROTOCOL_TYPES,
    "service": SERVICES,
    "flag": FLAGS,
}
NUMERIC = tuple(c for c in COLUMNS if c not in CATEGORICAL)
#: Fractions of connections: within [0, 1].
RATE_COLUMNS = tuple(c for c in NUMERIC if c.endswith("_rate"))
#: 0/1 indicators.
BINARY_COLUMNS = ("land", "logged_in", "root_shell", "is_host_login", "is_guest_login")
#: Counts (of seconds, bytes, connections, ...): whole numbers >= 0.
COUNT_COLUMNS = tuple(c for c in NUMERIC if c not in RATE_COLUMNS and c not in BINARY_COLUMNS)
UNKNOWN_CHOICES = ("error", "ignore")


@dataclass(frozen=True)
class KDDCup99:
    """Encoded KDDCUP99 rows.

    Attributes
    ----------
    features:
        float32 ``(n, 118)``: scaled numeric columns first, then the one-hot blocks.
    labels:
        int64 ``(n,)``, 1 for ``"normal."`` (the anomaly class), 0 otherwise.
    raw_labels:
        The label strings as in the file (e.g. ``"smurf."``).
    feature_names:
        Column names of ``features``.
    """

    features: np.ndarray
    labels: np.ndarray
    raw_labels: np.ndarray
    feature_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def parse_kddcup99(path: Path, text: str) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Split the CSV text into numeric columns, categorical columns and labels.

    Raises :class:`DataFormatError` naming the file and the 1-based line for a row with
    the wrong number of fields, a non-numeric or non-finite value in a numeric column, a
    value outside its column's range (see the module docstring) or a label without the
    trailing ".".
    """
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(path, "no rows")
    for i, line in enumerate(lines):
        if line.count(",") != N_FIELDS - 1:
            raise DataFormatError(
                path, f"row {i + 1}: expected {N_FIELDS} comma-separated fields, got {line.count(',') + 1}"
            )
    numeric_idx = [j for j, c in enumerate(COLUMNS) if c not in CATEGORICAL]
    try:
        numeric = np.loadtxt(
            lines, delimiter=",", usecols=numeric_idx, dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError as exc:
        _raise_first_bad_number(path, lines, numeric_idx)
        raise DataFormatError(path, f"numeric columns could not be parsed ({exc})") from None
    bad = np.flatnonzero(~np.isfinite(numeric).all(axis=1))
    if bad.size:
        raise DataFormatError(path, f"row {bad[0] + 1}: non-finite numeric value")
    _check_ranges(path, lines, numeric)
    fields = np.array([line.split(",", 4)[1:4] for line in lines])
    categorical = {c: fields[:, k] for k, c in enumerate(CATEGORICAL)}
    labels = np.array([line.rpartition(",")[2].strip() for line in lines])
    _check_labels(path, labels)
    return numeric, categorical, labels


def _check_ranges(path: Path, lines: list[str], numeric: np.ndarray) -> None:
    """Raise for the first row (in file order) holding a value outside its column's range."""
    rules: list[tuple[str, np.ndarray]] = []
    for k, name in enumerate(NUMERIC):
        col = numeric[:, k]
        if name in RATE_COLUMNS:
            rules.append(("a rate in [0, 1]", (col < 0) | (col > 1)))
        elif name in BINARY_COLUMNS:
            rules.append(("0 or 1", (col != 0) & (col != 1)))
        else:
            rules.append(("a count (a whole number >= 0)", (col < 0) | (col != np.floor(col))))
    bad_rows = np.zeros(numeric.shape[0], dtype=bool)
    for _, bad in rules:
        bad_rows |= bad
    if not bad_rows.any():
        return
    row = int(np.argmax(bad_rows))
    k = next(k for k, (_, bad) in enumerate(rules) if bad[row])
    name = NUMERIC[k]
    value = lines[row].split(",")[COLUMNS.index(name)].strip()
    raise DataFormatError(path, f"row {row + 1}: column {name!r} must be {rules[k][0]}, got {value}")


def _check_labels(path: Path, labels: np.ndarray) -> None:
    """Every label must be a name followed by "." (``normal.``, ``smurf.``)."""
    ok = np.char.endswith(labels, ".") & (np.char.str_len(labels) > 1)
    if not ok.all():
        row = int(np.argmin(ok))
        raise DataFormatError(
            path,
            f"row {row + 1}: label {str(labels[row])!r} does not end in '.' "
            "(KDDCUP99 labels are written like 'normal.' and 'smurf.')",
        )


def _raise_first_bad_number(path: Path, lines: list[str], numeric_idx: list[int]) -> None:
    for i, line in enumerate(lines):
        fields = line.split(",")
        for j in numeric_idx:
            try:
                if "_" in fields[j]:  # float() accepts 1_000, the CSV parser does not
                    raise ValueError(fields[j])
                float(fields[j])
            except ValueError:
                raise DataFormatError(
                    path, f"row {i + 1}: column {COLUMNS[j]!r} must be numeric, got {fields[j]!r}"
                ) from None


def _category_codes(
    path: Path | str, categorical: dict[str, np.ndarray], unknown: str
) -> dict[str, np.ndarray]:
    """Each categorical column as indices into its list in :data:`CATEGORIES`, -1 for a
    value outside the list (only with ``unknown="ignore"``, which warns)."""
    codes: dict[str, np.ndarray] = {}
    ignored: list[str] = []
    any_outside = np.zeros(len(categorical[CATEGORICAL[0]]), dtype=bool)
    for c in CATEGORICAL:
        known = CATEGORIES[c]
        index = {v: k for k, v in enumerate(known)}
        values = categorical[c].tolist()
        code = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
        outside = code < 0
        if outside.any():
            if unknown == "error":
                row = int(np.argmax(outside))
                raise DataFormatError(
                    path,
                    f"row {row + 1}: column {c!r} has unknown value {values[row]!r} "
                    f"(not one of the {len(known)} known values; unknown='ignore' encodes it as all zeros)",
                )
            any_outside |= outside
            names, counts = np.unique(categorical[c][outside], return_counts=True)
            ignored += [
                f"{c}={v!r} ({n} row{'s' if n > 1 else ''})"
                for v, n in zip(names.tolist(), counts, strict=True)
            ]
        codes[c] = code
    if ignored:
        shown = ", ".join(ignored[:10]) + (f" and {len(ignored) - 10} more" if len(ignored) > 10 else "")
        warnings.warn(
            f"{path}: {int(any_outside.sum())} row(s) hold values outside the known categories, "
            f"encoded as all-zero one-hot blocks: {shown}",
            UserWarning,
            stacklevel=3,
        )
    return codes


def encode_kddcup99(
    numeric: np.ndarray,
    categorical: dict[str, np.ndarray],
    fit_rows: np.ndarray | None,
    scale: bool = True,
    *,
    unknown: str = "error",
    source: Path | str = "KDDCUP99 rows",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """One-hot the categorical columns against :data:`CATEGORIES` and min-max scale the
    numeric ones.

    ``fit_rows`` (a boolean mask or indices) selects the rows whose minimum and maximum
    are used for scaling; ``None`` uses all rows. A categorical value outside its list
    raises :class:`DataFormatError` naming ``source`` (the file), the row, the column and
    the value, or with ``unknown="ignore"`` leaves that block all zero and warns.
    """
    from sklearn.preprocessing import MinMaxScaler

    check_choice("unknown", unknown, UNKNOWN_CHOICES)
    codes = _category_codes(source, categorical, unknown)
    names = list(NUMERIC)
    if scale:
        fit = numeric if fit_rows is None else numeric[fit_rows]
        if fit.shape[0] == 0:
            raise ValueError("fit_rows selects no rows to compute the min-max statistics from")
        numeric = MinMaxScaler().fit(fit).transform(numeric)
    width = numeric.shape[1] + sum(len(v) for v in CATEGORIES.values())
    out = np.zeros((numeric.shape[0], width), dtype=np.float32)
    out[:, : numeric.shape[1]] = numeric
    rows = np.arange(numeric.shape[0])
    offset = numeric.shape[1]
    for c in CATEGORICAL:
        code = codes[c]
        hit = code >= 0
        out[rows[hit], offset + code[hit]] = 1.0
        offset += len(CATEGORIES[c])
        names += [f"{c}={v}" for v in CATEGORIES[c]]
    return out, tuple(names)


def _fit_rows(fit_rows: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray:
    """``fit_rows`` as a boolean mask or an index array, checked against ``n`` rows."""
    rows = np.asarray(fit_rows)
    if rows.ndim != 1:
        raise ValueError(f"fit_rows must be 1-D (a mask or row indices), got shape {rows.shape}")
    if rows.dtype == np.bool_:
        if rows.shape[0] != n:
            raise ValueError(f"fit_rows as a mask must have one entry per row ({n}), got {rows.shape[0]}")
        return rows
    if rows.size == 0:
        return rows.astype(np.int64)
    if not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"fit_rows must hold row indices (integers) or booleans, got dtype {rows.dtype}")
    if rows.min() < 0 or rows.max() >= n:
        raise ValueError(
            f"fit_rows must be row indices in [0, {n}), got values in [{rows.min()}, {rows.max()}]"
        )
    return rows


def load_kddcup99(
    root: str | os.PathLike[str] | None = None,
    *,
    scale: str = "inliers",
    fit_rows: Sequence[int] | np.ndarray | None = None,
    verify_sha256: bool = False,
    unknown: str = "error",
) -> KDDCup99:
    """Load and encode the KDDCUP99 10 % file (494,021 rows, 118 features).

    Parameters
    ----------
    root:
        Data root (see :mod:`nrf.data.paths`); the file is looked up under ``kddcup99/``.
    scale:
        Which rows give the min-max statistics: ``"inliers"`` (rows that are not
        ``"normal."``, the class a detector trains on; the default), ``"all"``, ``"rows"``
        (the rows given by ``fit_rows``, e.g. a training split) or ``"none"`` (raw values).
    verify_sha256:
        Check the gzip file against its published sha256.
    unknown:
        What a ``protocol_type``, ``service`` or ``flag`` value outside
        :data:`CATEGORIES` does: ``"error"`` (the default) raises
        :class:`DataFormatError` naming the file, row, column and value; ``"ignore"``
        encodes it as an all-zero block and warns with the count of such rows.
    """
    check_choice("scale", scale, ("inliers", "all", "rows", "none"))
    check_choice("unknown", unknown, UNKNOWN_CHOICES)
    if (scale == "rows") != (fit_rows is not None):
        raise ValueError("fit_rows must be given exactly when scale='rows'")
    path = find_file("kddcup99", SUBDIR, FILENAMES, root)
    if verify_sha256:
        verify(path, path.read_bytes(), "sha256", SHA256_GZ)
    try:
        text = read_bytes(path).decode("ascii")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not an ASCII CSV file ({exc})") from exc
    numeric, categorical, raw = parse_kddcup99(path, text)
    labels = (raw == ANOMALY_LABEL).astype(np.int64)
    mask: np.ndarray | None
    if scale == "inliers":
        mask = labels == 0
        if not mask.any():
            raise DataFormatError(
                path,
                f"every row is {ANOMALY_LABEL!r}: no inlier rows to scale with (scale='inliers')",
            )
    elif scale == "rows":
        mask = _fit_rows(fit_rows, len(labels))
    else:
        mask = None
    features, names = encode_kddcup99(
        numeric, categorical, mask, scale=scale != "none", unknown=unknown, source=path
    )
    return KDDCup99(features=features, labels=labels, raw_labels=raw, feature_names=names)
