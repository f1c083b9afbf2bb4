"""Every failure of the ``nrf`` command line is one line on stderr and exit code 1.

Bad configs name the file or the dotted key; unexpected exceptions name their type and
point to ``--debug``, which shows the traceback. A seeded fuzz of TOML configs checks
that loading (and building the objective from) a mangled config only ever fails with a
:class:`~nrf.registry.ConfigError` naming the file or a key.
"""

from __future__ import annotations

import collections
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import tomllib

from nrf.cli import train_cmd
from nrf.cli.main import main
from nrf.registry import ConfigError
from nrf.training.build import build_objective
from nrf.training.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("run", "data", "model", "objective", "sampler", "optim", "train", "divergence")
SMALL = """\
[run]
name = "tiny"
device = "cpu"
[data]
name = "gmm32"
limit = 100
[sampler]
name = "langevin"
step_size = 0.01
steps = 2
[optim.energy]
lr = 1e-3
[train]
steps = 2
batch_size = 10
progress = false
"""


def one_error_line(err: str) -> str:
    """The single ``error:`` line of ``err`` (asserting there is exactly one, no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """A tiny valid run config whose runs go under ``tmp_path / "runs"``."""
    path = tmp_path / "small.toml"
    out_dir = json.dumps(str(tmp_path / "runs"))
    path.write_text(SMALL.replace('name = "tiny"\n', f'name = "tiny"\nout_dir = {out_dir}\n', 1))
    return path


# --- config files that are not TOML -------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00", "binary data: a NUL byte"),
        (random.Random(0).randbytes(400), "not a TOML file"),
        (b"[train]\nsteps = 3\nname = 'caf\xe9'\n", "not UTF-8 text: byte 0xe9 at line 3, column 12"),
        (b"[train]\nsteps = \n", "invalid TOML: .*at line 2, column 9"),
        (b"[train\nsteps = 1\n", "invalid TOML: .*at line 1, column 7"),
    ],
)
def test_a_config_that_is_not_toml_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(content)
    assert main(["train", str(path)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"nrf train: error: {path}: not a TOML file (")
    assert re.search(reason, line)


def test_an_executable_as_config_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    binary = Path(sys.executable).resolve()
    assert main(["train", str(binary)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"nrf train: error: {binary}: not a TOML file (")


def test_missing_config_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "nope.toml")]) == 1
    assert (
        one_error_line(capsys.readouterr().err)
        == f"nrf train: error: config file not found: {tmp_path / 'nope.toml'}"
    )
    assert main(["train", str(tmp_path)]) == 1
    assert one_error_line(capsys.readouterr().err).startswith(
        f"nrf train: error: {tmp_path}: not a config file"
    )


# --- bad values name the key the user wrote ------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('run.name="../escaped"', r"run\.name: expected a single folder name .*, got '\.\./escaped'"),
        ('run.name=""', r"run\.name: expected a non-empty folder name, got ''"),
        ('run.name=".."', r"run\.name: expected a folder name that does not start with '\.'"),
        ("optim.energy.lr=inf", r"optim\.energy\.lr: expected a finite number, got inf"),
        ("optim.energy.lr=nan", r"optim\.energy\.lr: expected a finite number, got nan"),
        ("optim.energy.lr=-1e-3", r"optim\.energy\.lr: expected a finite number > 0, got -0\.001"),
        ("train.grad_clip=inf", r"train\.grad_clip: expected a finite number, got inf"),
        ("sampler.steps=-3", r"sampler\.steps: expected an int >= 0, got -3"),
        ("sampler.steps=0", r"sampler\.steps: k must be an int >= 1, got 0"),  # when the objective is built
        ("sampler.step_size=-0.5", r"sampler\.step_size: step_size must be a finite number > 0, got -0\.5"),
        ("sampler.noise_scale=-1", r"sampler\.noise_scale: noise_scale must be a finite number >= 0"),
        ("model.energy_args={ zz = 1 }", r"model\.energy_args\.zz: not an argument of MLPEnergy"),
    ],
)
def test_bad_values_name_their_key(
    small_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    assert main(["train", str(small_config), "--set", override]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert re.fullmatch(f"nrf train: error: {message}.*", line), line
    assert not (tmp_path / "runs").exists()  # refused before anything was written
    assert not (tmp_path / "escaped").exists()


# --- unexpected exceptions and --debug ------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (RuntimeError("boom\nsecond line"), "RuntimeError: boom"),
        (KeyError("missing"), "KeyError: 'missing'"),
        (IndexError("index 3 is out of bounds"), "IndexError: index 3 is out of bounds"),
        (
            RecursionError("maximum recursion depth exceeded"),
            "RecursionError: maximum recursion depth exceeded",
        ),
        (AssertionError(), "AssertionError"),
    ],
)
def test_unexpected_exceptions_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, shown: str
) -> None:
    def fail(args: Any) -> int:
        raise exc

    monkeypatch.setattr(train_cmd, "run_train", fail)
    assert main(["train", "whatever.toml"]) == 1
    err = capsys.readouterr().err
    assert one_error_line(err) == f"nrf train: error: {shown} (run with --debug for the traceback)"
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--debug", "train", "x.toml"], ["train", "--debug", "x.toml"]])
def test_debug_lets_the_exception_through(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    def fail(args: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(train_cmd, "run_train", fail)
    with pytest.raises(RuntimeError, match="boom"):
        main(argv)


def test_debug_shows_expected_errors_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        main(["--debug", "train", str(tmp_path / "nope.toml")])


def test_debug_flag_does_not_change_a_successful_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []

    def ok(args: Any) -> int:
        seen.append(args.debug)
        return 0

    monkeypatch.setattr(train_cmd, "run_train", ok)
    assert main(["train", "x.toml"]) == 0
    assert main(["--debug", "train", "x.toml"]) == 0
    assert main(["train", "x.toml", "--debug"]) == 0
    assert seen == [False, True, True]
    assert capsys.readouterr().err == ""


def test_keyboard_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cmd, "run_train", interrupted)
    assert main(["train", "x.toml"]) == 130
    assert capsys.readouterr().err == "nrf train: interrupted\n"


# --- fuzz: mangled configs fail only with errors that name the file or a key ----------------

WEIRD: list[Any] = [
    float("inf"), float("-inf"), float("nan"), -1, 0, 1, -1.0, 0.0, 1e308, 2**63 - 1, -(2**63), 2**64,
    "", "x", "../x", ".", True, False, [], [1, "a"], [0.5, 0.9], {}, {"name": "x"}, {"a": {"b": 1}},
]  # fmt: skip
NEW_KEYS = ["zz", "name", "steps", "lr", "k", "seed", "args"]
NAMES = {
    ("sampler", "name"): ["langevin", "sgld", "mala", "hmc", "mppi", "sghmc", "coopnet", "nuts"],
    ("objective", "name"): ["cd", "inclusive", "exclusive", "gan", "wgan-gp", "vae"],
    ("train", "lr_schedule"): ["constant", "cosine", "exponential", {"name": "exponential", "gamma": 2.0}],
    ("model", "energy"): ["gmm", "kdd", "mnist", "rbm"],
    ("model", "generator"): ["gmm", "kdd", "mnist", "flow"],
    ("data", "name"): ["gmm32", "ring8", "npy", "mnist", "imagenet"],
}


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 2 else 4)
    if kind == 0:
        return rng.choice(WEIRD)
    if kind == 1:
        return rng.randint(-(10**6), 10**6)
    if kind == 2:
        return rng.uniform(-1e3, 1e3)
    if kind == 3:
        return "".join(rng.choice("ab_./-") for _ in range(rng.randrange(5)))
    if kind in (4, 5):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(NEW_KEYS): _random_value(rng, depth + 1)}


def _paths(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in table.items():
        out.append((*prefix, key))
        if isinstance(value, dict):
            out += _paths(value, (*prefix, key))
    return out


def _mutate_table(data: dict[str, Any], rng: random.Random) -> None:
    """One random change: a value replaced (by a random value, a weird number, another
    component name), a key deleted or an unknown key added."""
    paths = _paths(data)
    if not paths:
        data[rng.choice(SECTIONS)] = _random_value(rng)
        return
    path = rng.choice(paths)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    op = rng.randrange(5)
    if op == 0:
        parent[path[-1]] = _random_value(rng)
    elif op == 1:
        parent[path[-1]] = rng.choice(WEIRD)
    elif op == 2:
        del parent[path[-1]]
    elif op == 3:
        target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
        target[rng.choice(NEW_KEYS)] = _random_value(rng)
    else:
        section, key = rng.choice(list(NAMES))
        if not isinstance(data.get(section), dict):
            data[section] = {}
        data[section][key] = rng.choice(NAMES[(section, key)])


def _mutate_bytes(raw: bytes, rng: random.Random) -> bytes:
    """Byte flips, a truncation or an insertion of TOML punctuation or stray bytes."""
    b = bytearray(raw)
    op = rng.randrange(4)
    if op == 0:
        for _ in range(rng.randint(1, 5)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:
        del b[rng.randrange(len(b)) :]
    elif op == 2:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    else:
        i = rng.randrange(len(b))
        b[i:i] = rng.choice(
            [b"[", b"]", b"=", b'"', b"\n", b"{", b"inf", b"nan", b"-1", b"\xff", b"\x00", b"'''"]
        )
    return bytes(b)


KEY_ERROR = re.compile(rf"^({'|'.join(SECTIONS)})(\.[^\s:]+|\[\d+\])*: ")


def _names_file_or_key(message: str, path: Path) -> bool:
    return (
        message.startswith(f"{path}: ")
        or message == f"config file not found: {path}"
        or bool(KEY_ERROR.match(message))
        or ": unknown key (allowed: " in message  # a top-level key the user made up, named first
    )


def fuzz_configs(tmp_path: Path, n: int, seed: int) -> collections.Counter[str]:
    """Load ``n`` seeded mutations of the shipped small configs (and build the objective of
    those that load); fail on any error that is not a ConfigError naming the file or a key."""
    rng = random.Random(seed)
    bases = [REPO / "configs" / "gmm_cd.toml", REPO / "configs" / "gmm_inclusive.toml"]
    counts: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for i in range(n):
        raw = rng.choice(bases).read_bytes()
        path = tmp_path / f"fuzz{i}.toml"
        if rng.random() < 0.4:
            path.write_bytes(_mutate_bytes(raw, rng))
        else:
            data = tomllib.loads(raw.decode())
            for _ in range(rng.randint(1, 3)):
                _mutate_table(data, rng)
            path.write_text(tomli_w.dumps(data))
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            counts["refused"] += 1
            if not _names_file_or_key(str(exc), path):
                failures.append(f"{path.name}: unnamed: {exc}")
            continue
        except Exception as exc:
            failures.append(f"{path.name}: load raised {type(exc).__name__}: {exc}")
            continue
        assert isinstance(cfg, Config)
        counts["loaded"] += 1
        try:
            build_objective(cfg)
        except ConfigError as exc:
            counts["build refused"] += 1
            if not KEY_ERROR.match(str(exc)):
                failures.append(f"{path.name}: build unnamed: {exc}")
        except Exception as exc:
            failures.append(f"{path.name}: build raised {type(exc).__name__}: {exc}")
        else:
            counts["built"] += 1
    assert not failures, "\n".join(failures[:20])
    return counts


def test_fuzzed_configs_fail_only_with_named_errors(tmp_path: Path) -> None:
    counts = fuzz_configs(tmp_path, 300, seed=0)
    print(dict(counts))
    assert counts["loaded"] + counts["refused"] == 300
    assert counts["refused"] > 100  # most mutations are nonsense ...
    assert counts["built"] > 10  # ... and some still make a valid run


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzzed_configs_many(tmp_path: Path, seed: int) -> None:
    counts = fuzz_configs(tmp_path, 2000, seed=seed)
    assert counts["loaded"] + counts["refused"] == 2000
