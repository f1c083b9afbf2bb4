"""TOML configs: validation with dotted key names, overrides, round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(bad)
