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
    assert cfg.optim["energy"].lr == pytest.approx(1e-3)
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
        ("[optim.energy]\nname = 'rmsprop'\n", "optim.energy.name"),
    ],
)
def test_errors_name_the_dotted_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_overrides() -> None:
    cfg = load_config(None, ["optim.energy.lr=1e-4", "run.name=exp-1", "model.energy_args.hidden=[8, 8]"])
    assert cfg.optim["energy"].lr == pytest.approx(1e-4)
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
