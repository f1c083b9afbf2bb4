"""One registry of named components, each with a symmetric ``to_config`` / ``from_config``.

A *spec* is a plain mapping ``{"name": NAME, ARG: VALUE, ...}``: what a TOML table or a
detector preset holds. A :class:`Registry` maps names (and aliases, e.g. ``"sgld"`` for
``"langevin"``) to constructors and builds a component from a spec, checking every
argument against the constructor's signature and annotations:

* an argument the constructor does not take is refused by name, with the list of the
  ones it does take;
* a value of the wrong type is refused naming the dotted key, the expected type and the
  value found; TOML lists become tuples where the constructor wants a tuple;
* an int must fit in 64 bits (TOML's integers); a number where the annotation wants a
  float must be finite: NaN is always refused, and
  ``inf`` / ``-inf`` only pass where the default itself is infinite (``math.inf`` meaning
  "no bound") or a dataclass field says so with ``metadata={"allow_inf": True}``;
* constructor errors (``ValueError`` / ``TypeError`` from argument checks) come back as
  :class:`ConfigError` naming the key.

A component that can describe itself derives from :class:`Configurable`:
``component.to_config()`` returns its spec and ``Registry.build(spec)`` (or
``type(component).from_config(spec)``) rebuilds an equal component. Objects a component
needs but that are not configuration (networks, a sampler inside an objective,
parameters of an optimizer) are passed to :meth:`Registry.build` as ``context``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names its key."""


# --- values against annotations ----------------------------------------------------------


def type_name(tp: Any) -> str:
    """A readable name of the annotation ``tp`` (``float or none``, ``list[int]``)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return "none" if tp is type(None) else getattr(tp, "__name__", str(tp))


_PLAIN = (int, float, str, bool, type(None), list, tuple, dict)


def checkable(tp: Any) -> bool:
    """Whether :func:`convert` can check values of annotation ``tp`` (plain data only)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType, list, tuple, dict):
        return all(checkable(a) for a in typing.get_args(tp) if a is not Ellipsis)
    if origin is typing.Literal:
        return True
    return tp in _PLAIN or dataclasses.is_dataclass(tp)


def _takes_float(tp: Any) -> bool:
    """Whether the annotation ``tp`` is ``float`` or a union with a ``float`` option."""
    if tp is float:
        return True
    union = typing.get_origin(tp) in (Union, types.UnionType)
    return union and any(_takes_float(a) for a in typing.get_args(tp))


def infinite_default(default: Any) -> bool:
    """Whether a parameter's default is an infinite float (``math.inf``: "no bound"), the
    sign that ``inf`` is a meaningful value for it."""
    return isinstance(default, float) and math.isinf(default)


def convert(value: Any, tp: Any, key: str, *, allow_inf: bool = False) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints promoted to floats,
    lists to tuples where ``tp`` is a tuple); a :class:`ConfigError` naming ``key`` otherwise.

    A float given where ``tp`` wants a float must be finite: NaN is always refused, ``inf``
    and ``-inf`` unless ``allow_inf`` (it applies to the items of lists, tuples and tables
    of ``tp`` too)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    non_finite = isinstance(value, float) and not math.isfinite(value) and _takes_float(tp)
    if non_finite and (math.isnan(value) or not allow_inf):
        expected = "a number or inf" if allow_inf else "a finite number"
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    if origin in (Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return convert(value, option, key, allow_inf=allow_inf)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{key}: expected one of {list(typing.get_args(tp))}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected none, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [convert(v, item, f"{key}[{i}]", allow_inf=allow_inf) for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(v, args[0], f"{key}[{i}]", allow_inf=allow_inf) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} values ({type_name(tp)}), got {value!r}")
        items = enumerate(zip(value, args, strict=True))
        return tuple(convert(v, a, f"{key}[{i}]", allow_inf=allow_inf) for i, (v, a) in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        _, item = typing.get_args(tp)
        return {k: convert(v, item, f"{key}.{k}", allow_inf=allow_inf) for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:  # TOML integers are 64-bit; tomllib reads any size
                raise ConfigError(f"{key}: expected an int of at most 64 bits, got {value!r}")
            return value
    elif (tp in (str, bool) and isinstance(value, tp)) or (
        tp in (list, dict, tuple) and isinstance(value, tp)
    ):
        return value
    raise ConfigError(f"{key}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})")


def from_dict(cls: type[Any], data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (nested) dict, validating every key (floats finite
    unless the field's default is infinite or its metadata has ``allow_inf``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            raise ConfigError(f"{where}: unknown key (allowed: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            where = f"{prefix}.{f.name}" if prefix else f.name
            allow_inf = bool(f.metadata.get("allow_inf")) or infinite_default(f.default)
            kwargs[f.name] = convert(data[f.name], hints[f.name], where, allow_inf=allow_inf)
    return cls(**kwargs)


def plain(value: Any) -> Any:
    """``value`` as JSON / TOML data: tuples as lists, numpy scalars as numbers, nested."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# --- components -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered constructor: its canonical name, the keyword arguments it is called
    with by default (``defaults``; e.g. ``mh=True`` for ``"mala"``) and the parameters
    supplied by the caller rather than the spec (``context``)."""

    name: str
    factory: Callable[..., Any]
    defaults: Mapping[str, Any]
    context: tuple[str, ...]
    converters: Mapping[str, Callable[[Any, str], Any]]

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The spec-settable parameters of the constructor, by name."""
        target = self.factory.__init__ if inspect.isclass(self.factory) else self.factory
        params = dict(inspect.signature(target).parameters)
        params.pop("self", None)
        return {
            k: p
            for k, p in params.items()
            if k not in self.context and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def hints(self) -> dict[str, Any]:
        target = self.factory.__init__ if inspect.isclass(self.factory) else self.factory
        try:
            return typing.get_type_hints(target)
        except Exception:  # unresolvable forward references: no type checks
            return {}


class Registry(Generic[T]):
    """Named constructors of one kind of component (``"sampler"``, ``"optimizer"``, ...).

    >>> reg: Registry[dict] = Registry("thing")
    >>> @reg.register("pair", aliases=("couple",))
    ... def pair(a: int, b: float = 1.0) -> dict:
    ...     return {"a": a, "b": b}
    >>> reg.build({"name": "couple", "a": 2})
    {'a': 2, 'b': 1.0}
    >>> reg.build({"name": "pair", "a": 2, "c": 3}, key="thing")
    Traceback (most recent call last):
    ...
    nrf.registry.ConfigError: thing.c: not an argument of pair (its arguments: a, b)
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        *,
        aliases: tuple[str, ...] = (),
        defaults: Mapping[str, Any] | None = None,
        context: tuple[str, ...] = (),
        converters: Mapping[str, Callable[[Any, str], Any]] | None = None,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: make ``factory`` available as ``name`` (and each alias).

        ``converters`` turn a spec value into the constructor's argument (e.g. a number or
        a table into a step-size schedule); they receive the value and its dotted key.
        """

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries or name in self._aliases:
                raise ValueError(f"{self.kind} {name!r} is registered already")
            self._entries[name] = Entry(name, factory, dict(defaults or {}), context, dict(converters or {}))
            for alias in aliases:
                self._aliases[alias] = name
            if inspect.isclass(factory) and issubclass(factory, Configurable) and not defaults:
                factory.config_name = name
                factory.registry = self
            return factory

        return wrap

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (e.g. a component registered by a test)."""
        canonical = self.entry(name).name
        del self._entries[canonical]
        self._aliases = {a: n for a, n in self._aliases.items() if n != canonical}

    def names(self) -> list[str]:
        """Registered names and aliases, sorted."""
        return sorted([*self._entries, *self._aliases])

    def entry(self, name: Any, key: str = "name") -> Entry:
        """The entry of ``name`` or an alias of it; a :class:`ConfigError` listing the names."""
        canonical = self._aliases.get(name, name) if isinstance(name, str) else None
        if canonical not in self._entries:
            raise ConfigError(f"{key}: expected one of {self.names()}, got {name!r}")
        return self._entries[canonical]

    def canonical(self, name: str) -> str:
        """The registered name behind an alias."""
        return self.entry(name).name

    def arguments(self, spec: Mapping[str, Any] | str, key: str = "") -> tuple[Entry, dict[str, Any]]:
        """Validate ``spec`` (a name, or a mapping with ``"name"``) and return the entry and
        the converted keyword arguments (defaults of the entry included)."""
        prefix = f"{key}." if key else ""
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{key or self.kind}: expected a table with a 'name', got {spec!r}")
        if "name" not in spec:
            raise ConfigError(f"{prefix}name: missing (one of {self.names()})")
        entry = self.entry(spec["name"], f"{prefix}name")
        params = entry.parameters()
        hints = entry.hints()
        kwargs = dict(entry.defaults)
        for arg, value in spec.items():
            if arg == "name":
                continue
            if arg not in params:
                raise ConfigError(
                    f"{prefix}{arg}: not an argument of {entry.name} (its arguments: {', '.join(params)})"
                )
            where = f"{prefix}{arg}"
            if arg in entry.converters:
                kwargs[arg] = entry.converters[arg](value, where)
            elif arg in hints and checkable(hints[arg]):
                allow_inf = infinite_default(params[arg].default)
                kwargs[arg] = convert(value, hints[arg], where, allow_inf=allow_inf)
            else:
                kwargs[arg] = value
        missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
        if missing:
            raise ConfigError(f"{prefix}{missing[0]}: required by {entry.name}")
        return entry, kwargs

    def resolve(self, spec: Mapping[str, Any] | str, key: str = "") -> dict[str, Any]:
        """``spec`` completed: the canonical name and every argument, defaults filled in, as
        plain data (what a resolved config records)."""
        entry, kwargs = self.arguments(spec, key)
        out: dict[str, Any] = {"name": entry.name}
        for k, p in entry.parameters().items():
            if k in kwargs:
                value = kwargs[k]
                value = value.config() if hasattr(value, "config") and callable(value.config) else value
                out[k] = plain(value)
            elif p.default is not inspect.Parameter.empty:
                out[k] = plain(p.default)
        return out

    def build(self, spec: Mapping[str, Any] | str, *, key: str = "", **context: Any) -> T:
        """The component described by ``spec``; ``context`` supplies the non-config
        arguments the entry declared (networks, parameters); others given are ignored."""
        entry, kwargs = self.arguments(spec, key)
        target = entry.factory.__init__ if inspect.isclass(entry.factory) else entry.factory
        signature = inspect.signature(target).parameters
        missing = [
            c for c in entry.context if c not in context and signature[c].default is inspect.Parameter.empty
        ]
        if missing:
            raise TypeError(f"{self.kind} {entry.name!r} needs {missing[0]!r} from its caller")
        try:
            given = {c: context[c] for c in entry.context if c in context}
            return entry.factory(**given, **kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            arg = _argument_named(str(exc), entry.parameters(), anywhere=isinstance(exc, ValueError))
            if arg is None and isinstance(exc, TypeError):
                raise  # not an argument check: a bug, not a bad config
            where = f"{key}.{arg}" if key and arg else (key or self.kind)
            raise ConfigError(f"{where}: {exc}") from None


def _argument_named(message: str, params: Mapping[str, Any], *, anywhere: bool) -> str | None:
    """The argument an argument check's message is about: the parameter it starts with
    (nrf's checks: ``"beta must be in (0, 1]"``, ``"revision='paper' needs ..."``), else,
    with ``anywhere``, the one parameter named as a word in it (torch's
    ``"Invalid weight_decay value: -1.0"``); None when no single parameter is named."""
    first = re.match(r"[A-Za-z_]\w*", message)
    if first and first.group() in params:
        return first.group()
    if not anywhere:
        return None
    named = [p for p in params if re.search(rf"(?<![\w.]){re.escape(p)}(?![\w(])", message)]
    return named[0] if len(named) == 1 else None


class Configurable:
    """A component that describes itself: ``to_config()`` gives its spec, and
    ``from_config(spec)`` (through its registry) builds an equal one.

    Subclasses implement :meth:`config_args` (JSON-able constructor arguments); the name is
    set when the class is registered.
    """

    config_name: ClassVar[str] = ""
    registry: ClassVar[Registry[Any] | None] = None

    def config_args(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this component (plain data)."""
        raise NotImplementedError

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **config_args()}``."""
        if not self.config_name:
            raise TypeError(f"{type(self).__name__} is not registered under a name")
        return {"name": self.config_name, **plain(self.config_args())}

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], **context: Any) -> Any:
        """Build the component of ``spec`` (a :class:`ConfigError` names a bad key)."""
        if cls.registry is None:
            raise TypeError(f"{cls.__name__} is not registered under a name")
        built = cls.registry.build(spec, **context)
        if not isinstance(built, cls):
            raise ConfigError(f"name: {spec.get('name')!r} is a {type(built).__name__}, not a {cls.__name__}")
        return built
