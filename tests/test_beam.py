"""BEAM: the nearest-neighbour critics, the adversarial gradient as a covariance under the
model, the warm-up, and persistent fantasy particles that survive a checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nrf.energies import RBM
from nrf.objectives import BEAM, ContrastiveDivergence, nearest_neighbour_critic
from nrf.samplers import Langevin
from nrf.targets import BoltzmannTarget
from nrf.training.loop import Loop
from training_helpers import loop_of, straight_and_resumed


def _rbm(seed: int = 0) -> RBM:
    return RBM(2, 6, "gaussian", weight_std=0.5, generator=torch.Generator().manual_seed(seed))


def test_nearest_neighbour_critics() -> None:
    data = torch.tensor([[0.0], [0.1], [0.2]])
    model = torch.tensor([[4.0], [5.1], [5.2]])
    x = torch.tensor([[0.05], [5.15], [2.3]])
    t = nearest_neighbour_critic(x, data, model, k=3, weighted=False)
    # 2.3: its neighbours 4.0 (model, 1.7 away), 0.2 and 0.1 (data, 2.1 and 2.2 away)
    torch.testing.assert_close(t, torch.tensor([1.0, -1.0, 2 * (2 / 3) - 1]))
    w = 1 / (torch.tensor([1.7, 2.1, 2.2]) + 1e-3)  # 2 sum_data w / sum_all w - 1, w = 1 / (d + eps)
    weighted = nearest_neighbour_critic(x[2:], data, model, k=3, eps=1e-3)
    torch.testing.assert_close(weighted, 2 * (w[1:].sum() / w.sum()).reshape(1) - 1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 6\]"):
        nearest_neighbour_critic(x, data, model, k=7)


def test_adversarial_surrogate_gradient_is_the_covariance_under_the_model() -> None:
    """d/dtheta of (1 - gamma) mean((T - mean T) F) is (1 - gamma) Cov[T, dF/dtheta], the
    negative of Eq. 13's dA/dtheta = Cov[T, -dF/dtheta]."""
    rbm = _rbm()
    v = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))
    t = torch.rand(40, generator=torch.Generator().manual_seed(4)) * 2 - 1
    surrogate = ((t - t.mean()) * rbm(v)).mean()
    (grad,) = torch.autograd.grad(surrogate, rbm.weight)
    per_row = torch.stack([torch.autograd.grad(rbm(v[i : i + 1]).sum(), rbm.weight)[0] for i in range(40)])
    cov = ((t - t.mean())[:, None, None] * (per_row - per_row.mean(0))).mean(0)
    torch.testing.assert_close(grad, cov)


def test_warmup_is_maximum_likelihood_then_the_critic_joins() -> None:
    rows = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + 1.0
    beam = BEAM(_rbm(), Langevin(0.01), k=3, gamma=0.25, warmup=3, target=BoltzmannTarget)
    loop = loop_of(beam, rows, 6)
    gammas: list[float] = []

    class Record:
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

        def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
            gammas.append(metrics["gamma"])
            assert ("critic" in metrics) == (metrics["gamma"] < 1)

    loop.run([Record()])  # type: ignore[list-item]
    assert gammas == [1.0, 1.0, 1.0, 0.25, 0.25, 0.25]


def test_beam_refuses_an_energy_without_hidden_units() -> None:
    from nrf.energies import MLPEnergy

    with pytest.raises(ValueError, match=r"features='hidden' needs an energy with hidden_probs"):
        BEAM(MLPEnergy((2,), hidden=(8,), norm="none"), Langevin(0.01), target=BoltzmannTarget)
    BEAM(
        MLPEnergy((2,), hidden=(8,), norm="none"), Langevin(0.01), features="visible", target=BoltzmannTarget
    )


@pytest.mark.parametrize("kind", ["pcd", "beam"])
def test_fantasy_particles_survive_a_checkpoint(kind: str) -> None:
    """Persistent chains are the whole chain state; a run continued from a checkpoint takes
    the same steps as one that never stopped."""
    rows = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 0.3 + 1.0

    def objective() -> ContrastiveDivergence:
        if kind == "pcd":
            return ContrastiveDivergence(_rbm(), Langevin(0.01), k=3, start="persistent", n_particles=20)
        return BEAM(_rbm(), Langevin(0.01), k=3, gamma=0.5, warmup=2, n_particles=20, target=BoltzmannTarget)

    straight, second = straight_and_resumed(objective, rows)
    for a, b in zip(straight.objective.parameters(), second.objective.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    chains = straight.objective._chains
    assert chains is not None
    assert chains.x.shape == (20, 2)
    assert torch.equal(chains.x, second.objective._chains.x)  # type: ignore[union-attr]


def test_n_particles_is_an_option_of_persistent_chains() -> None:
    with pytest.raises(ValueError, match="n_particles is an option of start='persistent'"):
        ContrastiveDivergence(_rbm(), Langevin(0.01), start="data", n_particles=10)


def run_config(config: str, out: Path, *extra: str) -> Path:
    """`nrf train` a shipped config shortened (6 steps, 2 sweeps, 50 particles), then
    `nrf resume` it to 9 steps and `nrf sample` 7 rows; returns the run folder."""
    from nrf.cli.main import main

    root = Path(__file__).resolve().parents[1] / "configs"
    sets = [f"run.out_dir={str(out)!r}", "train.steps=6", "train.checkpoint_every=3", "train.eval_every=0",
            "sampler.steps=2", "objective.args.n_particles=50", 'run.device="cpu"', *extra]  # fmt: skip
    assert main(["train", str(root / f"{config}.toml"), *[x for s in sets for x in ("--set", s)]]) == 0
    run = next(p for p in out.iterdir() if (p / "config.toml").exists())
    assert main(["resume", str(run), "--set", "train.steps=9"]) == 0
    assert main(["sample", str(run), "-n", "7", "--out", str(out / "s.npy")]) == 0
    assert np.load(out / "s.npy").shape[0] == 7
    return run


@pytest.mark.parametrize("config", ["grid_beam", "grid_rbm_pcd"])
def test_rbm_configs_train_resume_and_sample(config: str, tmp_path: Path) -> None:
    run = run_config(config, tmp_path)
    assert json.loads((run / "summary.json").read_text())["step"] == 9


def test_samples_of_persistent_chains_continue_the_fantasy_particles() -> None:
    """Evaluation samples of PCD / BEAM start from the fantasy particles (the model's
    samples), not from uniform noise in noise_range, and leave the chains as they were."""
    rbm = _rbm()
    cd = ContrastiveDivergence(rbm, Langevin(1e-6), k=2, start="persistent", n_particles=5)
    cd.chains(torch.full((8, 2), 30.0), torch.Generator().manual_seed(0))
    before = cd._chains.x.clone()  # type: ignore[union-attr]
    samples = cd.sample(12, torch.Generator().manual_seed(1))
    assert samples.shape == (12, 2)
    assert torch.allclose(samples, torch.full((12, 2), 30.0), atol=0.05)
    assert torch.equal(cd._chains.x, before)  # type: ignore[union-attr]


def test_centring_tracks_the_data_means_and_survives_a_checkpoint() -> None:
    gen = torch.Generator().manual_seed(4)
    rows = (torch.rand(64, 6, generator=gen) < torch.linspace(0.1, 0.9, 6)).float()

    def objective() -> ContrastiveDivergence:
        rbm = RBM(6, 4, weight_std=0.3, generator=torch.Generator().manual_seed(0))
        return ContrastiveDivergence(rbm, Langevin(0.01), k=1, start="persistent", centre=True,
                                     centre_rate=0.5, target=BoltzmannTarget)  # fmt: skip

    single = objective()
    rbm = single.energy
    before = rbm(rows).detach()
    single.recentre(rows)  # the first move sets the offsets to the batch's means
    torch.testing.assert_close(rbm.visible_offset, rows.mean(0))
    torch.testing.assert_close(rbm.hidden_offset, rbm.hidden_probs(rows).mean(0).detach())
    after = rbm(rows).detach()
    torch.testing.assert_close(after - after.mean(), before - before.mean(), atol=1e-5, rtol=0)  # F + const
    previous = rbm.visible_offset.clone()
    single.recentre(rows[:8])
    torch.testing.assert_close(rbm.visible_offset, 0.5 * previous + 0.5 * rows[:8].mean(0))

    straight, second = straight_and_resumed(objective, rows)
    for a, b in zip(
        straight.objective.state_dict().values(), second.objective.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert straight.objective.centre_updates == 8
    with pytest.raises(ValueError, match="centre=True needs an energy with set_offsets"):
        ContrastiveDivergence(torch.nn.Linear(2, 1), Langevin(0.01), centre=True)
