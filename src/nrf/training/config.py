"""Run configurations: TOML files validated into typed dataclasses.

Every section is a dataclass; :func:`from_dict` checks the types and refuses unknown keys,
naming the dotted key (``optim.energy.lr``), the expected type and the value found.
:func:`apply_overrides` applies command-line ``--set key=value`` overrides (values parsed
as TOML, else taken as strings) before validation; :func:`validate` then checks the values
(ranges, the run name, the component specs against their registries).

Numbers: TOML has ``inf`` and ``nan``, a config does not. NaN is refused everywhere; ``inf``
only where it means "no bound" (``divergence.max_abs_energy``, ``divergence.max_energy_gap``,
and component arguments whose default is ``math.inf``). A file that is not TOML (binary,
not UTF-8, a syntax error) is refused naming the file, with the position where known.

A full example lives in ``configs/`` and in the README.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

import tomli_w

from nrf.registry import ConfigError, from_dict


@dataclass
class RunSection:
    """Where and how the run happens."""

    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    threads: int = 1


@dataclass
class DataSection:
    """Training data: a built-in set (``gmm32``, ``ring8``, ``grid25``, ``bimodal1d``,
    ``digits``, ``mnist``, ``kddcup99``, ``cifar10``), a simulated trajectory set
    (``bouncing-ball``, ``pusher``, ``pusher-conditional``: rows are next states, labels
    their contexts; ``trajectories`` and ``trajectory_steps`` set the number and length of
    the training trajectories, default the set's own) or a file (``npy``, ``csv``)."""

    name: str = "gmm32"
    root: str | None = None
    path: str | None = None
    labels: list[int] | None = None
    scale: str = "unit"
    validation_fraction: float = 0.0
    limit: int | None = None
    unknown: str = "error"  # kddcup99: a category outside the data set's lists ("error" / "ignore")
    trajectories: int | None = None
    trajectory_steps: int | None = None


@dataclass
class ModelSection:
    """Networks: presets of :func:`nrf.energies.paper_potential` and
    :func:`nrf.generators.paper_generator`, with constructor overrides."""

    energy: str = "gmm"
    energy_args: dict[str, Any] = field(default_factory=dict)
    generator: str | None = None
    generator_args: dict[str, Any] = field(default_factory=dict)
    init_batch: int = 500
    n_models: int = 1  # ensemble members trained together as one batched network


@dataclass
class ObjectiveSection:
    """The learning method and its own options (see :mod:`nrf.objectives`)."""

    name: str = "cd"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """The loop: length, batch, logging, evaluation and checkpoint cadence."""

    steps: int = 1000
    batch_size: int = 100
    grad_clip: float | None = None
    log_every: int = 50
    eval_every: int = 0
    checkpoint_every: int = 500
    keep_last: int = 3
    best_metric: str | None = None
    best_mode: str = "max"
    progress: bool = True
    ema: float | None = None  # decay of the energy's parameter average (the model kept)
    lr_schedule: str | dict[str, Any] = "constant"  # or a table {name = "cosine"}
    evaluators: list[str | dict[str, Any]] | None = None  # None: what suits the data kind
    max_seconds: float | None = None  # wall-time budget: stop (and evaluate, save) once spent


@dataclass
class DivergenceSection:
    """Divergence detection and recovery (roll back, lower the learning rates)."""

    enabled: bool = True
    max_abs_energy: float = field(default=1e6, metadata={"allow_inf": True})  # inf: no bound
    max_energy_gap: float | None = field(default=None, metadata={"allow_inf": True})
    patience: int = 3
    lr_factor: float = 0.5
    max_rollbacks: int = 3


@dataclass
class Config:
    """A whole run."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    objective: ObjectiveSection = field(default_factory=ObjectiveSection)
    # a sampler spec (nrf.samplers.SAMPLERS) plus ``steps``, the objective's L / k
    sampler: dict[str, Any] = field(
        default_factory=lambda: {"name": "langevin", "step_size": 0.01, "steps": 10}
    )
    # one optimizer spec (nrf.training.loop.OPTIMIZERS) per parameter group
    optim: dict[str, dict[str, Any]] = field(default_factory=lambda: {"energy": {"name": "adam"}})
    train: TrainSection = field(default_factory=TrainSection)
    divergence: DivergenceSection = field(default_factory=DivergenceSection)


def _parse_value(text: str) -> Any:
    """An override's value as TOML (``1e-4``, ``[8, 8]``, ``{ name = "cosine" }``), else the
    text itself as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides to a raw config dict (in place; returned).

    The value ``~`` removes the key instead (``optim.energy.betas=~``: back to the default,
    e.g. when switching ``optim.energy.name`` to an optimizer without ``betas``); a key that
    is not there to remove is an error. The string ``~`` itself is written ``"~"``.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.energy.lr=1e-4")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"--set {item!r}: expected a dotted KEY such as optim.energy.lr, got {key!r}")
        if text.strip() == "~":
            _remove(data, [p.strip() for p in parts], key.strip())
            continue
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a table")
        node[parts[-1]] = _parse_value(text.strip())
    return data


def _remove(data: dict[str, Any], parts: list[str], key: str) -> None:
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise ConfigError(f"--unset {key}: the config has no table {'.'.join(parts[: i + 1])}")
    if parts[-1] not in node:
        present = ", ".join(sorted(node)) or "none"
        raise ConfigError(f"--unset {key}: not set in the config, nothing to remove (keys there: {present})")
    del node[parts[-1]]


# What run directories written before the component registry recorded for every sampler and
# optimizer whatever its kind (one table held the union of all fields, at these defaults);
# values the component never took, dropped when such a run is read back.
_UNION_DEFAULTS: dict[str, dict[str, Any]] = {
    "sampler": {"beta": 0.1, "noise_scale": None, "grad_clip": None, "clamp": None},
    "optim": {"betas": [0.5, 0.999], "momentum": 0.0, "weight_decay": 0.0},
}


def _drop_union_defaults(data: dict[str, Any]) -> None:
    from nrf.samplers import SAMPLERS
    from nrf.training.loop import OPTIMIZERS

    tables: list[tuple[str, Any, Any, str]] = [("sampler", SAMPLERS, data.get("sampler"), "langevin")]
    tables += [("optim", OPTIMIZERS, t, "adam") for t in (data.get("optim") or {}).values()]
    for kind, registry, table, default_name in tables:
        if not isinstance(table, dict):
            continue
        try:
            accepted = registry.entry(table.get("name", default_name)).parameters()
        except ValueError:
            continue
        defaults = _UNION_DEFAULTS[kind]
        for key, default in defaults.items():
            if key in table and key not in accepted and table[key] == default:
                del table[key]


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, *, run_directory: bool = False
) -> Config:
    """Read a TOML file (or start from the defaults), apply overrides, validate.

    ``run_directory``: the file is a run's ``config.toml``, possibly written by an earlier
    nrf whose sampler and optimizer tables held every kind's fields at their defaults;
    those that the chosen component does not take are dropped.
    """
    data: dict[str, Any] = {} if path is None else read_toml(path)
    if run_directory:
        _drop_union_defaults(data)
    apply_overrides(data, overrides or [])
    return validate(from_dict(Config, data))


def _position(raw: bytes, offset: int) -> str:
    """``line L, column C`` (from 1, as tomllib counts them) of byte ``offset`` of ``raw``."""
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def read_toml(path: str | Path) -> dict[str, Any]:
    """The tables of the TOML file ``path``; a :class:`ConfigError` naming the file when it
    is missing, unreadable or not TOML (binary data, not UTF-8, a syntax error: with its line
    and column)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"{p}: not a config file (a directory or a special file)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror or exc})") from None
    if b"\0" in raw:
        where = _position(raw, raw.index(0))
        raise ConfigError(f"{p}: not a TOML file (binary data: a NUL byte at {where})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = _position(raw, exc.start)
        raise ConfigError(
            f"{p}: not a TOML file (not UTF-8 text: byte 0x{raw[exc.start]:02x} at {where})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not a TOML file (invalid TOML: {exc})") from None
    except RecursionError:
        raise ConfigError(f"{p}: not a TOML file (arrays or tables nested too deeply)") from None


def check_run_name(name: str) -> str:
    """``name`` if it is a plain folder name for ``run.out_dir/NAME``; a :class:`ConfigError`
    naming ``run.name`` otherwise (empty, ``.`` / ``..``, a path separator, a NUL or a
    leading dot)."""
    rule = None
    if not name:
        rule = "a non-empty folder name"
    elif any(c in name for c in "/\\\0"):
        rule = "a single folder name (no '/', '\\' or NUL)"
    elif name.startswith("."):
        rule = "a folder name that does not start with '.' (not '.', '..' or hidden)"
    if rule is not None:
        raise ConfigError(f"run.name: expected {rule}, got {name!r}")
    return name


def validate(cfg: Config) -> Config:
    """Value checks that types alone cannot express."""
    checks = [
        (cfg.train.steps >= 1, "train.steps", ">= 1", cfg.train.steps),
        (cfg.train.batch_size >= 1, "train.batch_size", ">= 1", cfg.train.batch_size),
        (cfg.train.log_every >= 1, "train.log_every", ">= 1", cfg.train.log_every),
        (cfg.train.eval_every >= 0, "train.eval_every", ">= 0", cfg.train.eval_every),
        (cfg.train.checkpoint_every >= 1, "train.checkpoint_every", ">= 1", cfg.train.checkpoint_every),
        (cfg.train.keep_last >= 1, "train.keep_last", ">= 1", cfg.train.keep_last),
        (cfg.train.best_mode in ("max", "min"), "train.best_mode", "'max' or 'min'", cfg.train.best_mode),
        (cfg.train.best_metric != "", "train.best_metric", "a metric name (or unset)", cfg.train.best_metric),
        (cfg.train.best_metric is None or cfg.train.eval_every > 0, "train.best_metric",
         "unset while train.eval_every = 0 (no evaluation to rank checkpoints by)", cfg.train.best_metric),
        (cfg.run.device in ("cpu", "cuda", "auto"), "run.device", "'cpu', 'cuda' or 'auto'", cfg.run.device),
        (cfg.train.grad_clip is None or cfg.train.grad_clip > 0, "train.grad_clip", "> 0 (or unset)",
         cfg.train.grad_clip),
        (cfg.train.max_seconds is None or cfg.train.max_seconds > 0, "train.max_seconds", "> 0 (or unset)",
         cfg.train.max_seconds),
        (cfg.run.threads >= 1, "run.threads", ">= 1", cfg.run.threads),
        (0 <= cfg.run.seed < 2**32, "run.seed", "an int in [0, 2**32)", cfg.run.seed),
        (bool(cfg.run.out_dir) and "\0" not in cfg.run.out_dir, "run.out_dir", "a folder path",
         cfg.run.out_dir),
        (cfg.model.n_models >= 1, "model.n_models", ">= 1", cfg.model.n_models),
        (cfg.model.init_batch >= 1, "model.init_batch", ">= 1", cfg.model.init_batch),
        (cfg.data.limit is None or cfg.data.limit >= 1, "data.limit", ">= 1 (or unset)", cfg.data.limit),
        (0.0 <= cfg.data.validation_fraction < 1.0, "data.validation_fraction", "in [0, 1)",
         cfg.data.validation_fraction),
        (0.0 < cfg.divergence.lr_factor < 1.0, "divergence.lr_factor", "in (0, 1)", cfg.divergence.lr_factor),
        (cfg.divergence.patience >= 1, "divergence.patience", ">= 1", cfg.divergence.patience),
        (cfg.divergence.max_rollbacks >= 0, "divergence.max_rollbacks", ">= 0", cfg.divergence.max_rollbacks),
        (cfg.divergence.max_abs_energy > 0, "divergence.max_abs_energy", "> 0 (inf: no bound)",
         cfg.divergence.max_abs_energy),
        (cfg.divergence.max_energy_gap is None or cfg.divergence.max_energy_gap > 0,
         "divergence.max_energy_gap", "> 0 (inf or unset: no bound)", cfg.divergence.max_energy_gap),
        (bool(cfg.optim), "optim", "at least one optimizer table", cfg.optim),
    ]  # fmt: skip
    for ok, key, expected, value in checks:
        if not ok:
            raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    check_run_name(cfg.run.name)
    from nrf.training.data import IMAGE_SCALES, IMAGES, NAMES

    if cfg.data.name not in NAMES:
        raise ConfigError(f"data.name: expected one of {list(NAMES)}, got {cfg.data.name!r}")
    if cfg.data.name in IMAGES and cfg.data.scale not in IMAGE_SCALES:
        raise ConfigError(f"data.scale: expected one of {list(IMAGE_SCALES)}, got {cfg.data.scale!r}")
    if cfg.data.unknown not in ("error", "ignore"):
        raise ConfigError(f"data.unknown: expected 'error' or 'ignore', got {cfg.data.unknown!r}")
    resolve_components(cfg)
    return cfg


# Ranges of the optimizers' arguments that torch checks only in part (or in words that do
# not name the key): the range in words and its test (``betas``: each of the pair).
_OPTIMIZER_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "lr": ("> 0", lambda v: v > 0),
    "eps": ("> 0", lambda v: v > 0),
    "weight_decay": (">= 0", lambda v: v >= 0),
    "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
    "alpha": ("in [0, 1)", lambda v: 0 <= v < 1),
    "betas": ("in [0, 1)", lambda v: 0 <= v < 1),
}


def _check_optimizer_arguments(kwargs: dict[str, Any], key: str) -> None:
    """Refuse optimizer arguments outside their range, naming ``key.ARG`` and the range."""
    for arg, (expected, ok) in _OPTIMIZER_RANGES.items():
        value = kwargs.get(arg)
        pairs = enumerate(value) if isinstance(value, (tuple, list)) else [(None, value)]
        for i, v in pairs:
            if v is not None and not ok(v):
                where = f"{key}.{arg}" if i is None else f"{key}.{arg}[{i}]"
                raise ConfigError(f"{where}: expected a finite number {expected}, got {v!r}")


def resolve_components(cfg: Config) -> None:
    """Check the component specs (sampler, optimizers, schedule, the objective's arguments)
    against their registries and replace each by its completed spec (every argument,
    defaults filled in)."""
    import torch

    from nrf.objectives import OBJECTIVES
    from nrf.samplers import SAMPLERS
    from nrf.training.loop import LR_SCHEDULES, OPTIMIZERS, ParameterAverage

    objective = OBJECTIVES.entry(cfg.objective.name, "objective.name")
    if "name" in cfg.objective.args:
        raise ConfigError(
            f"objective.args.name: not an argument of {objective.name} (the objective is chosen by "
            f"objective.name), got {cfg.objective.args['name']!r}"
        )
    # types and names of the objective's own options (their values are checked when it is built)
    OBJECTIVES.arguments({"name": objective.name, **cfg.objective.args}, key="objective.args")

    sampler = {"name": "langevin", **cfg.sampler}
    steps = sampler.pop("steps", 10)
    if "step_size" in SAMPLERS.entry(sampler.get("name"), "sampler.name").parameters():
        sampler.setdefault("step_size", 0.01)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 2**63:
        raise ConfigError(f"sampler.steps: expected an int >= 0, got {steps!r}")
    SAMPLERS.build(sampler, key="sampler")  # every argument checked by the sampler itself
    cfg.sampler = {**SAMPLERS.resolve(sampler, key="sampler"), "steps": steps}
    for name, given in cfg.optim.items():
        if not isinstance(given, dict):
            raise ConfigError(f"optim.{name}: expected a table, got {given!r}")
        spec = {"name": "adam", **given}
        _, kwargs = OPTIMIZERS.arguments(spec, key=f"optim.{name}")
        _check_optimizer_arguments(kwargs, f"optim.{name}")
        OPTIMIZERS.build(spec, key=f"optim.{name}", params=[torch.zeros(1, requires_grad=True)])
        cfg.optim[name] = OPTIMIZERS.resolve(spec, key=f"optim.{name}")
    schedule = LR_SCHEDULES.build(cfg.train.lr_schedule, key="train.lr_schedule")
    cfg.train.lr_schedule = schedule.to_config()
    if cfg.train.evaluators is not None:
        from nrf.training.evaluation import EVALUATORS

        for i, evaluator in enumerate(cfg.train.evaluators):
            EVALUATORS.arguments(evaluator, key=f"train.evaluators[{i}]")
    if cfg.train.ema is not None:
        try:
            ParameterAverage(torch.nn.Linear(1, 1), cfg.train.ema)
        except ValueError:
            raise ConfigError(f"train.ema: expected a number in (0, 1), got {cfg.train.ema!r}") from None


def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain data (None values dropped: TOML has no null)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(dataclasses.asdict(cfg))


def dumps(cfg: Config) -> str:
    """The resolved config as TOML text (every default filled in)."""
    return tomli_w.dumps(to_dict(cfg))
