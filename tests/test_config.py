"""TOML configs: validation with dotted key names, overrides, round trip."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from nrf.registry import Registry
from nrf.training.config import Config, ConfigError, dumps, from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_shipped_configs_are_valid() -> None:
    files = sorted((REPO / "configs").glob("*.toml"))
    assert files
    for path in files:
        cfg = load_config(path)
        assert cfg.train.steps >= 1


def test_defaults_and_round_trip(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.grad_clip=1.5", "model.energy_args.hidden=[4]"])
    assert cfg.optim["energy"]["lr"] == pytest.approx(1e-3)
    (tmp_path / "c.toml").write_text(dumps(cfg))
    assert load_config(tmp_path / "c.toml") == cfg
    assert from_dict(Config, {}) == Config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[train]\nstepz = 3\n", "train.stepz: unknown key"),
        ("[nonsense]\n", "nonsense: unknown key"),
        ("[train]\nsteps = 'many'\n", "train.steps: expected int, got 'many'"),
        ("[train]\nsteps = 1.5\n", "train.steps: expected int"),
        ("[optim.energy]\nlr = 'fast'\n", "optim.energy.lr: expected float"),
        ("[optim.energy]\nbetas = [0.5, 'x']\n", r"optim.energy.betas\[1\]: expected float"),
        ("[train]\nprogress = 1\n", "train.progress: expected bool"),
        ("[train]\nsteps = 0\n", "train.steps: expected >= 1"),
        ("[run]\ndevice = 'tpu'\n", "run.device: expected"),
        ("[divergence]\nlr_factor = 2.0\n", "divergence.lr_factor"),
        ("[optim.energy]\nname = 'adagrad'\n", "optim.energy.name: expected one of"),
        ("[optim.energy]\nname = 'sgd'\nbetas = [0.5, 0.9]\n", "optim.energy.betas: not an argument of sgd"),
        ("[sampler]\nname = 'hmc'\nn_leapfrogs = 3\n", "sampler.n_leapfrogs: not an argument of hmc"),
        ("[sampler]\nname = 'mppi'\ntemperature = -1.0\n", r"sampler\.temperature: temperature must be"),
        ("[sampler]\nstep_size = { name = 'polynomial', a = 10 }\n", "sampler.step_size.b: required"),
        ("[train]\nlr_schedule = 'wavy'\n", "train.lr_schedule.name: expected one of"),
        ("[train]\nema = 1.5\n", r"train.ema: expected a number in \(0, 1\)"),
        ("[train]\nevaluators = ['fid']\n", r"train.evaluators\[0\].name: expected one of"),
        (
            "[train]\nevaluators = [{ name = 'samples', n = 3 }]\n",
            r"train.evaluators\[0\].n: not an argument",
        ),
    ],
)
def test_errors_name_the_dotted_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_bad_sampler_steps_names_its_key(tmp_path: Path) -> None:
    from nrf.training.build import build_objective

    with pytest.raises(ConfigError, match=r"sampler\.steps: k must be an int >= 1"):
        build_objective(load_config(None, ["sampler.steps=0"]))  # CD-k with k = 0
    with pytest.raises(ConfigError, match=r"objective\.args\.reinit_prob: reinit_prob must be in \[0, 1\]"):
        build_objective(load_config(None, ["objective.args={ reinit_prob = 2.0 }"]))


def test_components_reach_every_argument() -> None:
    cfg = load_config(
        None,
        [
            "sampler.name='hmc'", "sampler.n_leapfrog=4", "sampler.mass=2.0", "sampler.step_size=0.1",
            "optim.energy.name='rmsprop'", "optim.energy.alpha=0.95", "train.ema=0.99",
            "train.lr_schedule={ name = 'exponential', gamma = 0.97 }",
        ],
    )  # fmt: skip
    assert cfg.sampler == {"name": "hmc", "step_size": 0.1, "n_leapfrog": 4, "mass": 2.0, "steps": 10}
    assert cfg.optim["energy"]["alpha"] == 0.95
    assert cfg.train.lr_schedule == {"name": "exponential", "gamma": 0.97, "every": "epoch"}
    from nrf.training.build import build_sampler

    sampler = build_sampler(cfg.sampler)
    assert (sampler.n_leapfrog, sampler.mass) == (4, 2.0)  # type: ignore[attr-defined]
    mppi = load_config(None, ["sampler.name='mppi'", "sampler.n_samples=7", "sampler.temperature=0.5"])
    assert (build_sampler(mppi.sampler).n_samples, build_sampler(mppi.sampler).temperature) == (7, 0.5)  # type: ignore[attr-defined]
    coop = load_config(
        None,
        [
            "sampler.name='coopnet'",
            "sampler.n_x=3",
            "sampler.step_size={ name = 'polynomial', a = 10, b = 1000, c = 2 }",
        ],
    )
    built = build_sampler(coop.sampler)
    assert built.n_x == 3  # type: ignore[attr-defined]
    assert built.step_size(0) == pytest.approx(0.01)  # type: ignore[attr-defined]


def test_overrides() -> None:
    cfg = load_config(None, ["optim.energy.lr=1e-4", "run.name=exp-1", "model.energy_args.hidden=[8, 8]"])
    assert cfg.optim["energy"]["lr"] == pytest.approx(1e-4)
    assert cfg.run.name == "exp-1"
    assert cfg.model.energy_args == {"hidden": [8, 8]}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.steps"])
    with pytest.raises(ConfigError, match=r"train\.steps: expected int"):
        load_config(None, ["train.steps=ten"])


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nsteps = 1")
    with pytest.raises(ConfigError, match=r"bad\.toml: not a TOML file \(invalid TOML: .*line 1, column 7"):
        load_config(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"\x7fELF\x02\x01\x01\x00\x00\x00",
            r"not a TOML file \(binary data: a NUL byte at line 1, column 8\)",
        ),
        (
            b"[train]\nsteps = 1\nname = '\xff'\n",
            r"not a TOML file \(not UTF-8 text: byte 0xff at line 3, column 9\)",
        ),
        (b"[train]\nsteps = = 1\n", r"not a TOML file \(invalid TOML: .*\(at line 2, column 9\)\)"),
        (b"a = " + b"[" * 5000 + b"]" * 5000, r"not a TOML file \(arrays or tables nested too deeply\)"),
    ],
)
def test_files_that_are_not_toml_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {message}$"):
        load_config(path)


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path))}: not a config file"):
        load_config(tmp_path)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", "a\\b", "nul\0byte", ".hidden"])
def test_run_name_is_one_folder_name(name: str) -> None:
    with pytest.raises(ConfigError, match=r"^run\.name: expected .*, got "):
        load_config(None, [f"run.name={json.dumps(name)}"])


def test_run_name_accepts_plain_names() -> None:
    for name in ("exp-1", "gmm_cd.v2", "a b", "x.."):
        assert load_config(None, [f"run.name={json.dumps(name)}"]).run.name == name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.energy.lr=inf", r"optim\.energy\.lr: expected a finite number, got inf"),
        ("optim.energy.lr=nan", r"optim\.energy\.lr: expected a finite number, got nan"),
        ("optim.energy.lr=-inf", r"optim\.energy\.lr: expected a finite number, got -inf"),
        ("optim.energy.lr=0", r"optim\.energy\.lr: expected a finite number > 0, got 0\.0"),
        ("optim.energy.lr=1e400", r"optim\.energy\.lr: expected a finite number, got inf"),
        ("optim.energy={ name = 'sgd', lr = inf }", r"optim\.energy\.lr: expected a finite number"),
        (
            "optim.energy={ name = 'sgd', momentum = -0.5 }",
            r"optim\.energy\.momentum: expected .* in \[0, 1\)",
        ),
        (
            "optim.energy={ name = 'sgd', momentum = 1.0 }",
            r"optim\.energy\.momentum: expected .* in \[0, 1\)",
        ),
        ("optim.energy={ name = 'rmsprop', alpha = -1.0 }", r"optim\.energy\.alpha: expected"),
        ("optim.energy.weight_decay=inf", r"optim\.energy\.weight_decay: expected a finite number"),
        ("optim.energy.weight_decay=-1e-4", r"optim\.energy\.weight_decay: expected a finite number >= 0"),
        ("optim.energy.eps=0", r"optim\.energy\.eps: expected a finite number > 0"),
        ("optim.energy.betas=[0.5, nan]", r"optim\.energy\.betas\[1\]: expected a finite number, got nan"),
        ("optim.energy.betas=[1.0, 0.9]", r"optim\.energy\.betas\[0\]: expected a finite number in \[0, 1\)"),
        ("optim.generator={ lr = inf }", r"optim\.generator\.lr: expected a finite number"),
        ("sampler.step_size=inf", r"sampler\.step_size: step_size must be a finite number > 0, got inf"),
        ("sampler.noise_scale=nan", r"sampler\.noise_scale: expected a finite number, got nan"),
        ("sampler={ name = 'hmc', mass = inf }", r"sampler\.mass: expected a finite number, got inf"),
        ("train.grad_clip=inf", r"train\.grad_clip: expected a finite number, got inf"),
        ("train.grad_clip=0", r"train\.grad_clip: expected > 0 \(or unset\), got 0\.0"),
        ("train.ema=nan", r"train\.ema: expected a finite number, got nan"),
        (
            "train.lr_schedule={ name = 'exponential', gamma = nan }",
            r"train\.lr_schedule\.gamma: expected a finite",
        ),
        ("data.validation_fraction=nan", r"data\.validation_fraction: expected a finite number, got nan"),
        ("divergence.lr_factor=inf", r"divergence\.lr_factor: expected a finite number, got inf"),
        ("divergence.max_abs_energy=nan", r"divergence\.max_abs_energy: expected a number or inf, got nan"),
        ("divergence.max_abs_energy=-inf", r"divergence\.max_abs_energy: expected > 0 \(inf: no bound\)"),
        ("divergence.max_energy_gap=0", r"divergence\.max_energy_gap: expected > 0"),
        ("objective.args={ alpha = inf }", r"objective\.args\.alpha: expected a finite number, got inf"),
        ("train.steps=9223372036854775808", r"train\.steps: expected an int of at most 64 bits"),
    ],
)
def test_numbers_must_be_finite_and_in_range(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config(None, [override])


def test_inf_means_no_bound_where_the_default_allows_it(tmp_path: Path) -> None:
    cfg = load_config(None, ["divergence.max_abs_energy=inf", "divergence.max_energy_gap=inf"])
    assert cfg.divergence.max_abs_energy == math.inf
    assert cfg.divergence.max_energy_gap == math.inf
    (tmp_path / "c.toml").write_text(dumps(cfg))
    assert load_config(tmp_path / "c.toml") == cfg


def test_registry_refuses_non_finite_floats_unless_the_default_is_infinite() -> None:
    reg: Registry[dict[str, float]] = Registry("thing")

    @reg.register("bounded")
    def bounded(rate: float = 0.1, limit: float = math.inf, cap: float | None = None) -> dict[str, float]:
        return {"rate": rate, "limit": limit}

    assert reg.build({"name": "bounded", "limit": math.inf}) == {"rate": 0.1, "limit": math.inf}
    with pytest.raises(ConfigError, match=r"^thing\.limit: expected a number or inf, got nan$"):
        reg.build({"name": "bounded", "limit": math.nan}, key="thing")
    with pytest.raises(ConfigError, match=r"^thing\.rate: expected a finite number, got inf$"):
        reg.build({"name": "bounded", "rate": math.inf}, key="thing")
    with pytest.raises(ConfigError, match=r"^thing\.cap: expected a finite number, got -inf$"):
        reg.build({"name": "bounded", "cap": -math.inf}, key="thing")


def test_registry_names_the_argument_a_constructor_error_is_about() -> None:
    reg: Registry[object] = Registry("thing")

    @reg.register("picky")
    def picky(weight_decay: float = 0.0, mode: str = "a") -> object:
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if mode != "a":
            raise ValueError(f"mode={mode!r} needs something else")
        return object()

    with pytest.raises(ConfigError, match=r"^thing\.weight_decay: Invalid weight_decay value: -1\.0$"):
        reg.build({"name": "picky", "weight_decay": -1.0}, key="thing")
    with pytest.raises(ConfigError, match=r"^thing\.mode: mode='b' needs something else$"):
        reg.build({"name": "picky", "mode": "b"}, key="thing")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.init_batch=0", r"model\.init_batch: expected >= 1, got 0"),
        ("run.seed=-1", r"run\.seed: expected an int in \[0, 2\*\*32\), got -1"),
        ("run.seed=4294967296", r"run\.seed: expected an int in \[0, 2\*\*32\)"),
        ("data.limit=0", r"data\.limit: expected >= 1 \(or unset\), got 0"),
        ("data.name='gmm33'", r"data\.name: expected one of \['gmm32'"),
        ("train.best_metric=''", r"train\.best_metric: expected a metric name"),
        (
            "train.best_metric='covered_modes'",
            r"train\.best_metric: expected unset while train\.eval_every = 0",
        ),
        ("objective.args={ name = 'gan' }", r"objective\.args\.name: not an argument of cd"),
        ("objective.args={ kk = 3 }", r"objective\.args\.kk: not an argument of cd"),
        ("objective.args={ k = 'ten' }", r"objective\.args\.k: expected int, got 'ten'"),
        ("sampler.steps=-3", r"sampler\.steps: expected an int >= 0, got -3"),
        ("sampler.steps=2.5", r"sampler\.steps: expected an int >= 0, got 2\.5"),
        ("sampler.step_size=-0.1", r"sampler\.step_size: step_size must be a finite number > 0, got -0\.1"),
        ("sampler={ name = 'hmc', n_leapfrog = 0 }", r"sampler\.n_leapfrog: n_leapfrog must be an int >= 1"),
    ],
)
def test_values_are_checked_when_the_config_loads(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}"):
        load_config(None, [override])


def test_sampler_steps_in_a_file_names_sampler_steps(tmp_path: Path) -> None:
    from nrf.training.build import build_objective

    path = tmp_path / "c.toml"
    path.write_text("[sampler]\nname = 'langevin'\nstep_size = 0.01\nsteps = -3\n")
    with pytest.raises(ConfigError, match=r"^sampler\.steps: expected an int >= 0, got -3$"):
        load_config(path)
    path.write_text("[objective]\nname = 'inclusive'\n[model]\ngenerator = 'gmm'\n[sampler]\nsteps = -3\n")
    with pytest.raises(ConfigError, match=r"^sampler\.steps: "):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^sampler\.steps: k must be an int >= 1, got 0$"):
        build_objective(load_config(None, ["sampler.steps=0"]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.energy_args={ zz = 1 }"], r"model\.energy_args\.zz: not an argument of MLPEnergy"),
        (
            ["model.energy_args={ scale_trainable = 1 }"],
            r"model\.energy_args\.scale_trainable: expected bool, got 1",
        ),
        (
            ["model.energy_args={ negative_slope = nan }"],
            r"model\.energy_args\.negative_slope: expected a finite",
        ),
        (
            ["model.energy_args={ hidden = [0] }"],
            r"model\.energy_args\.hidden: hidden\[0\] must be an int >= 1",
        ),
        (["model.energy_args={ name = 'kdd' }"], r"model\.energy_args\.name: not a network argument"),
        (
            ["objective.name='inclusive'", "model.generator='gmm'", "model.generator_args={ sigma = -1.0 }"],
            r"model\.generator_args\.sigma: sigma must be a finite number >= 0",
        ),
        (
            ["objective.name='inclusive'", "model.generator='gmm'", "model.generator_args={ sigma = 0.0 }"],
            r"objective\.args\.revision: revision='paper' needs a generator with sigma > 0",
        ),
    ],
)
def test_network_arguments_are_named(overrides: list[str], message: str) -> None:
    from nrf.training.build import build_objective

    cfg = load_config(None, overrides)
    with pytest.raises(ConfigError, match=f"^{message}"):
        build_objective(cfg)


def test_override_keys_must_be_dotted_names() -> None:
    for key in (".x", "train..steps", "train."):
        with pytest.raises(ConfigError, match=r"^--set .*: expected a dotted KEY"):
            load_config(None, [f"{key}=1"])
