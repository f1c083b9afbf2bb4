"""CIFAR-10 "python version" batches, read without trusting pickle.

The official batches are Python pickles of a dict with ``b"data"`` (a uint8 numpy array
of shape ``(10000, 3072)``) and ``b"labels"`` (a list of ints). A plain
``pickle.load`` would run any code a tampered file names, so :class:`RestrictedUnpickler`
resolves only stand-ins for the few numpy functions needed to rebuild an array (and for
the codec that Python 3 uses for bytes in protocol 2, latin-1 only), each accepting only
the arguments numpy writes, and refuses every other global; it sets the state of arrays
and dtypes only to what numpy writes for plain numeric ones (a crafted dtype state can
mark uint8 data as holding Python objects, which numpy would then dereference).

Before anything is built, :func:`check_pickle_structure` walks the opcode stream and
refuses a pickle whose containers nest deeper than :data:`MAX_NESTING` levels or refer
to themselves: such objects would make the unpickler (hashing a deeply nested key) or the
checks that follow recurse without bound. The official batches nest about six levels.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nrf._checks import check_choice
from nrf.data.errors import DataFormatError
from nrf.data.mnist import ImageSet
from nrf.data.paths import find_file

SUBDIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

#: The deepest nesting of containers (lists, tuples, dicts, the parts of an array) accepted.
MAX_NESTING = 32
_MODIFIERS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_NUMERIC_KINDS = "biuf"
_ENDIANS = ("<", ">", "|", "=")


class _NDArrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_reconstruct` accepts it, so
    the class itself is never called with the pickle's arguments."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NDArrayClass()


def _short(value: Any) -> str:
    """``repr(value)``, cut to 60 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any, what: str) -> str:
    """``value`` (str, or bytes from a Python 2 pickle read with encoding="bytes") as str."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, str):
        return value
    raise pickle.UnpicklingError(f"{what} must be a string, got {type(value).__name__}")


def _numeric_dtype(value: Any, what: str) -> np.dtype[Any]:
    if not isinstance(value, np.dtype):
        raise pickle.UnpicklingError(f"{what} must be a numpy dtype, got {type(value).__name__}")
    if value.kind not in _NUMERIC_KINDS or value.fields is not None or value.subdtype is not None:
        raise pickle.UnpicklingError(f"refusing dtype {value} (numeric arrays only)")
    return value


def _dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype[Any]:
    """``numpy.dtype`` as pickles call it, for plain numeric type codes (``"u1"``) only;
    always a new object, so a later ``BUILD`` never touches numpy's shared instances."""
    code = _text(obj, "a dtype code")
    try:
        dtype = np.dtype(code)
    except (TypeError, ValueError) as exc:
        raise pickle.UnpicklingError(f"invalid dtype {_short(code)} ({exc})") from None
    _numeric_dtype(dtype, "dtype")
    return np.dtype(code, align=bool(align), copy=True)


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` as numpy's pickles call it: an empty
    array that the following ``BUILD`` fills."""
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise pickle.UnpicklingError("refusing _reconstruct with other arguments than numpy writes")
    return np.ndarray((0,), dtype="b")


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (arrays pickled with protocol 5)."""
    if isinstance(buf, pickle.PickleBuffer):
        buf = buf.raw()
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise pickle.UnpicklingError(f"array buffer must be bytes, got {type(buf).__name__}")
    layout = _text(order, "array order")
    if layout not in ("C", "F"):
        raise pickle.UnpicklingError(f"array order must be 'C' or 'F', got {_short(layout)}")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"array shape must be a tuple of sizes, got {_short(shape)}")
    flat = np.frombuffer(buf, dtype=_numeric_dtype(dtype, "array dtype"))
    return flat.reshape(shape, order="C" if layout == "C" else "F")


def _latin1_encode(obj: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: latin-1 text only."""
    name = encoding.lower().replace("-", "").replace("_", "") if isinstance(encoding, str) else None
    if not isinstance(obj, str) or name not in ("latin1", "iso88591", "l1") or errors != "strict":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {_short(encoding)}")
    return obj.encode("latin-1")


_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,  # bytes pickled by Python 3 with protocol 2
}


def _set_dtype_state(dtype: np.dtype[Any], state: Any) -> None:
    """Apply the state numpy pickles for a plain dtype, ``(3, endian, None, None, None,
    -1, -1, 0)`` (a 9th item, metadata, may be None); anything else is refused, since the
    state can set fields, sizes and flags that make numpy misread memory."""
    if not (isinstance(state, tuple) and len(state) in (8, 9) and state[0] in (3, 4)):
        raise pickle.UnpicklingError("refusing a dtype state other than numpy's for plain dtypes")
    endian = _text(state[1], "dtype byte order")
    plain = state[2:5] == (None, None, None) and state[5:8] == (-1, -1, 0) and state[8:] in ((), (None,))
    if endian not in _ENDIANS or not plain:
        raise pickle.UnpicklingError("refusing a dtype state other than numpy's for plain dtypes")
    dtype.__setstate__((3, endian, None, None, None, -1, -1, 0))  # type: ignore[attr-defined]
    _numeric_dtype(dtype, "dtype")


def _set_array_state(array: np.ndarray, state: Any) -> None:
    """Apply ``(version, shape, dtype, is_fortran, data bytes)`` to an empty array."""
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        raise pickle.UnpicklingError("refusing an array state other than numpy's")
    shape, dtype, fortran, raw = state[-4:]
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"array shape must be a tuple of sizes, got {_short(shape)}")
    _numeric_dtype(dtype, "array dtype")
    if not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"array data must be bytes, got {type(raw).__name__}")
    array.__setstate__((*state[:-4], shape, dtype, bool(fortran), raw))


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that only rebuilds plain containers, bytes, strings, numbers and
    numeric numpy arrays.

    The globals it resolves are stand-ins for the numpy functions numpy's own pickles
    call, checking their arguments (:data:`_GLOBALS`); ``BUILD`` is allowed only on an
    array or a dtype, with the state numpy writes. Anything else raises
    :class:`pickle.UnpicklingError`. It is the Python implementation of the unpickler, so
    that ``BUILD`` can be checked.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = pickle._Unpickler.dispatch.copy()
    stack: list[Any]  # set by load()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if type(target) is np.ndarray:
            _set_array_state(target, state)
        elif isinstance(target, np.dtype):
            _set_dtype_state(target, state)
        else:
            raise pickle.UnpicklingError(f"refusing to set the state of a {type(target).__name__}")

    dispatch[pickle.BUILD[0]] = load_build


def check_pickle_structure(path: Path, data: bytes, max_nesting: int = MAX_NESTING) -> None:
    """Refuse a pickle whose objects would nest deeper than ``max_nesting`` or contain
    themselves, by simulating its opcodes (nothing is built and no global is resolved).

    Every object a container, call or ``BUILD`` consumes becomes its child; memo
    references keep their identity, so later changes to a memoized container count too.
    The longest chain of children bounds the nesting of anything the unpickler builds.
    Raises :class:`DataFormatError` naming ``path``.
    """
    children: list[list[int]] = []  # node -> the nodes it holds (or was given)
    stack: list[int] = []
    marks: list[int] = []  # stack lengths at each MARK, as in the unpickler
    memo: dict[int, int] = {}

    def malformed(pos: int | None, what: str) -> DataFormatError:
        return DataFormatError(path, f"not a valid CIFAR pickle batch ({what} at byte {pos})")

    def pop(n: int, pos: int | None) -> list[int]:
        if len(stack) - n < (marks[-1] if marks else 0):
            raise malformed(pos, "stack underflow")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    def operands(before: list[Any], pos: int | None) -> list[int]:
        """Pop what an opcode consumes: the items above the top mark (if it takes a
        stack slice) and the fixed items below, bottom first."""
        if pickletools.markobject not in before:
            return pop(len(before), pos)
        if not marks:
            raise malformed(pos, "no mark")
        start = marks.pop()
        held = stack[start:]
        del stack[start:]
        return pop(before.index(pickletools.markobject), pos) + held

    try:
        for op, arg, pos in pickletools.genops(data):
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name in _PUTS or name == "MEMOIZE":
                if len(stack) <= (marks[-1] if marks else 0):
                    raise malformed(pos, "memo store with nothing on the stack")
                memo[len(memo) if arg is None else int(arg)] = stack[-1]
            elif name in _GETS:
                if arg is None or int(arg) not in memo:
                    raise malformed(pos, f"memo key {arg} missing")
                stack.append(memo[int(arg)])
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "POP" and marks and marks[-1] == len(stack):
                marks.pop()
            elif name in ("DUP", "READONLY_BUFFER"):
                (top,) = pop(1, pos)
                stack += [top, top] if name == "DUP" else [top]
            elif name in _MODIFIERS:  # the bottom operand stays, holding the others
                target, *rest = operands(op.stack_before, pos)
                children[target].extend(rest)
                stack.append(target)
            else:
                items = operands(op.stack_before, pos)
                for _ in op.stack_after:
                    children.append(items)
                    stack.append(len(children) - 1)
    except ValueError as exc:  # pickletools: unknown opcode, truncated argument
        raise DataFormatError(path, f"not a valid CIFAR pickle batch ({exc})") from None
    _longest_chain(path, children, max_nesting)


def _longest_chain(path: Path, children: list[list[int]], max_nesting: int) -> None:
    """Raise if a node reaches itself or a chain of children is longer than ``max_nesting``."""
    depth = [0] * len(children)  # 0: unvisited, -1: on the current path, else chain length
    for root in range(len(children)):
        if depth[root]:
            continue
        path_stack: list[tuple[int, int]] = [(root, 0)]
        depth[root] = -1
        while path_stack:
            n, i = path_stack[-1]
            if i < len(children[n]):
                path_stack[-1] = (n, i + 1)
                child = children[n][i]
                if depth[child] == -1:
                    raise DataFormatError(path, "a container that contains itself refused")
                if depth[child] == 0:
                    depth[child] = -1
                    path_stack.append((child, 0))
            else:
                path_stack.pop()
                depth[n] = 1 + max((depth[c] for c in children[n]), default=0)
                if depth[n] > max_nesting:
                    raise DataFormatError(path, f"containers nested deeper than {max_nesting} levels refused")


def restricted_load(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (Python 2 strings as bytes).

    The opcode stream is checked by :func:`check_pickle_structure` first; any failure of
    the unpickler is a :class:`DataFormatError` naming the file.
    """
    p = Path(path)
    data = p.read_bytes()
    try:
        with warnings.catch_warnings():  # protocol-0 strings with invalid escapes warn
            warnings.simplefilter("ignore", DeprecationWarning)
            check_pickle_structure(p, data)
            obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except DataFormatError:
        raise
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
        LookupError, OverflowError, MemoryError, RecursionError, struct.error,
    ) as exc:  # fmt: skip
        raise DataFormatError(p, f"not a valid CIFAR pickle batch ({type(exc).__name__}: {exc})") from None
    _check_numeric(p, obj)
    return obj


def _check_numeric(path: Path, obj: Any) -> None:
    """Refuse any non-numeric array anywhere in ``obj`` (keys included).

    Walked without recursion, each container once (a shared or self-referencing one
    cannot make it loop), refusing nesting deeper than :data:`MAX_NESTING`."""
    todo: list[tuple[Any, int]] = [(obj, 0)]
    seen: set[int] = set()
    while todo:
        item, depth = todo.pop()
        if isinstance(item, np.ndarray):
            if not (np.issubdtype(item.dtype, np.number) or item.dtype == np.bool_):
                raise DataFormatError(path, f"array of dtype {item.dtype} refused (numeric arrays only)")
            continue
        if not isinstance(item, (dict, list, tuple, set, frozenset)):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if depth >= MAX_NESTING:
            raise DataFormatError(path, f"containers nested deeper than {MAX_NESTING} levels refused")
        values = list(item.keys()) + list(item.values()) if isinstance(item, dict) else list(item)
        todo.extend((v, depth + 1) for v in values)


def _key(d: dict[Any, Any], name: str) -> Any:
    for k in (name.encode(), name):
        if k in d:
            return d[k]
    return None


def check_labels(path: Path, labels: Any) -> np.ndarray:
    """The ``labels`` entry as int64 ``(n,)``: a list or array of integers, nothing else."""
    if not isinstance(labels, (list, tuple, np.ndarray)):
        raise DataFormatError(path, f"'labels' must be a list of integers, got {type(labels).__name__}")
    try:
        arr = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataFormatError(path, f"'labels' must be a list of integers ({exc})") from None
    if arr.ndim != 1:
        raise DataFormatError(path, f"'labels' must be a flat list of integers, got shape {arr.shape}")
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise DataFormatError(path, f"'labels' must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file into images ``(n, 32, 32, 3)`` uint8 and labels ``(n,)`` int64."""
    p = Path(path)
    obj = restricted_load(p)
    if not isinstance(obj, dict):
        raise DataFormatError(p, f"expected a dict, got {type(obj).__name__}")
    data, labels = _key(obj, "data"), _key(obj, "labels")
    if data is None or labels is None:
        raise DataFormatError(p, "missing 'data' or 'labels' entry")
    if not (
        isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
    ):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(p, f"'data' must be a uint8 array of shape (n, 3072), got {got}")
    if data.shape[0] == 0:
        raise DataFormatError(p, "no images (an empty 'data' array)")
    labels = check_labels(p, labels)
    if labels.shape != (data.shape[0],):
        raise DataFormatError(p, f"{labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataFormatError(p, f"labels must be 0-9, found range [{labels.min()}, {labels.max()}]")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def load_cifar10(split: str = "train", root: str | os.PathLike[str] | None = None) -> ImageSet:
    """Load CIFAR-10 ``"train"`` (50,000) or ``"test"`` (10,000) from the python batches.

    Files are looked up under ``cifar-10-batches-py/`` (see :mod:`nrf.data.paths`).
    Returns images ``(n, 32, 32, 3)`` uint8 (HWC) and labels ``(n,)`` int64.
    """
    check_choice("split", split, ("train", "test"))
    names = TRAIN_BATCHES if split == "train" else TEST_BATCHES
    parts = [read_batch(find_file("cifar10", SUBDIR, [n], root)) for n in names]
    return ImageSet(
        images=np.concatenate([p[0] for p in parts]), labels=np.concatenate([p[1] for p in parts])
    )
