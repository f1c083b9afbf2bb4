"""Rows of numbers from a ``.npy`` or ``.csv`` file, checked before anything computes with them.

Used for the training data of ``data.name = "npy"`` / ``"csv"`` and for ``nrf score
--input``. Every problem raises :class:`~nrf.data.errors.DataFormatError` naming the file:

* ``.npy`` files are parsed here (header, then the raw bytes), never through pickle: an
  ``.npz`` archive, a pickle, a header that does not parse, or a data part longer or
  shorter than the header's shape is refused; so is any dtype but integers and floats
  (bool, complex, strings, objects, structured records, dates);
* ``.csv`` files must be UTF-8 text whose non-blank lines all have the number of fields
  of the first one, each field a number (``nan`` and ``inf`` parse and are left to the
  caller's finiteness check);
* the result must have at least one row and no empty dimension, and every value must
  fit in float32 (a finite 1e300 would otherwise turn into inf).
"""

from __future__ import annotations

import csv
import math
import tokenize
import warnings
from pathlib import Path

import numpy as np

from nrf.data.errors import DataFormatError

FORMATS = ("npy", "csv")
_NUMERIC_KINDS = "iuf"  # signed and unsigned integers, floats
_HEADER_ERRORS = (
    ValueError, TypeError, SyntaxError, KeyError, OverflowError, RecursionError, MemoryError,
    tokenize.TokenError,
)  # fmt: skip


def read_npy(path: Path) -> np.ndarray:
    """The array stored in the ``.npy`` file ``path``, of an integer or float dtype."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        try:
            version = fmt.read_magic(f)
        except ValueError as exc:
            raise DataFormatError(path, f"not a .npy file ({exc})") from None
        if version not in ((1, 0), (2, 0)):
            raise DataFormatError(path, f"unsupported .npy format version {version[0]}.{version[1]}")
        try:
            with warnings.catch_warnings():  # numpy's note on headers written by Python 2
                warnings.simplefilter("ignore", UserWarning)
                if version == (1, 0):
                    shape, fortran_order, dtype = fmt.read_array_header_1_0(f)
                else:
                    shape, fortran_order, dtype = fmt.read_array_header_2_0(f)
        except _HEADER_ERRORS as exc:
            raise DataFormatError(path, f"invalid .npy header ({type(exc).__name__}: {exc})") from None
        payload = f.read()
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise DataFormatError(path, f"expected real numbers (an integer or float dtype), got dtype {dtype}")
    if any(n < 0 for n in shape):
        raise DataFormatError(path, f"invalid .npy header: negative size in shape {shape}")
    count = math.prod(shape)
    if len(payload) != count * dtype.itemsize:
        raise DataFormatError(
            path,
            f"shape {shape} of dtype {dtype} needs {count * dtype.itemsize} data bytes, "
            f"file has {len(payload)} (truncated or padded)",
        )
    flat = np.frombuffer(payload, dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def read_csv(path: Path) -> tuple[np.ndarray, list[int]]:
    """The numbers of the CSV file ``path`` as float64 ``(rows, fields)``, and the line
    number of each row (blank lines are skipped). A first line none of whose fields is a
    number (and none blank) is a header and skipped; its field count still has to match the rows'."""
    rows: list[list[float]] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            try:
                width: int | None = None
                header_line = 0
                for fields in reader:
                    if fields:
                        if width is None:
                            width = len(fields)
                            if all(v.strip() and not _is_number(v) for v in fields):
                                header_line = reader.line_num
                                continue  # the header
                        if len(fields) != width:
                            first = lines[0] if lines else header_line
                            raise DataFormatError(
                                path,
                                f"line {reader.line_num}: expected {width} fields "
                                f"(as on line {first}), got {len(fields)}",
                            )
                        rows.append(_numbers(path, reader.line_num, fields))
                        lines.append(reader.line_num)
            except csv.Error as exc:
                raise DataFormatError(path, f"line {reader.line_num}: not valid CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not a UTF-8 text file ({exc})") from None
    if not rows:
        raise DataFormatError(path, "no rows (the file is empty or blank, or holds a header only)")
    return np.asarray(rows, dtype=np.float64), lines


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _numbers(path: Path, line: int, fields: list[str]) -> list[float]:
    out = []
    for j, value in enumerate(fields):
        try:
            out.append(float(value))
        except ValueError:
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise DataFormatError(path, f"line {line}, field {j + 1}: not a number: {shown!r}") from None
    return out


def read_rows(path: str | Path, fmt: str, *, min_ndim: int = 2, finite: bool = True) -> np.ndarray:
    """Rows of ``path`` (``fmt`` ``"npy"`` or ``"csv"``) as a float32 array.

    The array must have at least ``min_ndim`` dimensions (rows first; a CSV file always
    gives ``(rows, fields)``), at least one row and no empty dimension. With ``finite``,
    NaN and inf are refused too (naming the first row); values that are finite in the
    file but beyond the float32 range always are.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    p = Path(path)
    lines: list[int] | None = None
    if fmt == "npy":
        arr = read_npy(p)
    else:
        arr, lines = read_csv(p)

    def where(i: int) -> str:
        return f"line {lines[i]}" if lines is not None else f"row {i + 1}"

    if arr.ndim < min_ndim:
        needed = "(rows, features...)" if min_ndim >= 2 else "(rows, ...)"
        raise DataFormatError(
            p, f"expected an array of at least {min_ndim} dimensions {needed}, got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise DataFormatError(p, f"no rows (shape {arr.shape})")
    if arr.size == 0:
        raise DataFormatError(p, f"the rows hold no values (shape {arr.shape})")
    flat = arr.reshape(arr.shape[0], -1)
    source_finite = np.isfinite(flat) if arr.dtype.kind == "f" else np.ones(flat.shape, dtype=bool)
    if finite and not source_finite.all():
        bad = ~source_finite.all(axis=1)
        raise DataFormatError(
            p, f"{int(bad.sum())} row(s) hold NaN or inf (first: {where(int(np.argmax(bad)))})"
        )
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    overflow = source_finite & ~np.isfinite(out.reshape(flat.shape))
    if overflow.any():
        i, j = (int(k[0]) for k in np.nonzero(overflow))
        raise DataFormatError(
            p, f"{where(i)}: value {float(flat[i, j])!r} is beyond the float32 range (about ±3.4e38)"
        )
    return out
