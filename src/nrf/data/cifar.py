"""CIFAR-10 "python version" batches, read without trusting pickle.

The official batches are Python pickles of a dict with ``b"data"`` (a uint8 numpy array
of shape ``(10000, 3072)``) and ``b"labels"`` (a list of ints). A plain
``pickle.load`` would run any code a tampered file names, so :class:`RestrictedUnpickler`
resolves only the few numpy globals needed to rebuild an array (and the codec that
Python 3 uses for bytes in protocol 2, for the latin-1 codec only) and refuses everything
else; the arrays it builds must have a numeric dtype.

Before anything is built, :func:`check_pickle_structure` walks the opcode stream and
refuses a pickle whose containers nest deeper than :data:`MAX_NESTING` levels or refer
to themselves: such objects would make the unpickler (hashing a deeply nested key) or the
checks that follow recurse without bound. The official batches nest about six levels.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from nrf._checks import check_choice
from nrf.data.errors import DataFormatError
from nrf.data.mnist import ImageSet
from nrf.data.paths import find_file

SUBDIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # arrays pickled with protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
#: The deepest nesting of containers (lists, tuples, dicts, the parts of an array) accepted.
MAX_NESTING = 32
_MODIFIERS = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: latin-1 text only."""
    if not isinstance(obj, str) or codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return obj.encode("latin-1", errors)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain containers, bytes, strings, numbers and
    numeric numpy arrays; any other global (a class or function) raises
    :class:`pickle.UnpicklingError`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3 with protocol 2
            return _latin1_encode
        if (module, name) in _ALLOWED_GLOBALS:
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError) as exc:  # numpy.core vs numpy._core
                raise pickle.UnpicklingError(f"cannot load global {module}.{name} ({exc})") from exc
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


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
    """Unpickle ``path`` with :class:`RestrictedUnpickler` (latin-1 for Python 2 strings).

    The opcode stream is checked by :func:`check_pickle_structure` first; any failure of
    the unpickler is a :class:`DataFormatError` naming the file.
    """
    p = Path(path)
    data = p.read_bytes()
    check_pickle_structure(p, data)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (
        pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
        LookupError, OverflowError, MemoryError, RecursionError,
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


def _labels(path: Path, labels: Any) -> np.ndarray:
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
    labels = _labels(p, labels)
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
