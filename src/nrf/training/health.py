"""Training-health figures logged by the loop (see :mod:`nrf.metrics.training_health`).

:class:`TrainingHealth` is a loop callback: at the end of every ``every``-th epoch (and of
the fit) it scores fixed reference training rows and held-out normal rows with the model
the fit would keep (the parameter average when there is one), and writes into that
epoch's entry of the :class:`~nrf.training.loop.EpochHistory`:

* ``energy_gap``: the epoch's mean of the objective's ``energy_data - energy_samples``
  (contrastive objectives);
* ``energy_mean``, ``energy_sd``, ``energy_shift``, ``rank_stability``, ``tail_stability`` of
  the reference rows;
* ``heldout_shift``, ``heldout_rank`` and, for objectives with a validation loss,
  ``heldout_loss`` of the held-out rows;
* with ``chains > 0``, a sampler and one model (not an ensemble): ``ess`` and ``rhat`` of the
  energy traces of ``chains`` chains run ``chain_steps`` steps from the objective's starts
  (the second half of each trace; the first is warm-up), and ``ksd``, the kernel Stein
  discrepancy (IMQ) of their final states against the model's score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nrf.metrics.chains import effective_sample_size, split_rhat
from nrf.metrics.stein import kernel_stein_discrepancy
from nrf.metrics.training_health import (
    energy_shift,
    heldout_rank,
    heldout_shift,
    rank_stability,
    tail_stability,
)
from nrf.nn import evaluation_mode
from nrf.objectives import Objective
from nrf.objectives.score import energy_score
from nrf.samplers import Sampler, run
from nrf.targets import BoltzmannTarget
from nrf.training.ensemble import member_energies, members
from nrf.training.loop import Callback, EpochHistory, Loop


def _energies(objective: Objective, rows: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """Energies of ``rows`` (an ensemble: the members' mean), shape ``(n,)``."""
    out = [member_energies(objective, rows[i : i + chunk]).double().mean(0).cpu()
           for i in range(0, rows.shape[0], chunk)]  # fmt: skip
    return torch.cat(out).numpy()


def chain_starts(objective: Any, n: int, generator: torch.Generator) -> torch.Tensor | None:
    """Where diagnostic chains start: the objective's own chain starts (inclusive-NRF: q or
    its persistent buffer), the data moments (score matching, NCE), else none."""
    if hasattr(objective, "chain_starts"):
        with torch.no_grad():
            return objective.chain_starts(n, generator)[0]
    if hasattr(objective, "moment_starts"):
        return objective.moment_starts(n, generator)
    return None


def chain_figures(
    objective: Any, n_chains: int, n_steps: int, generator: torch.Generator, sampler: Sampler | None = None
) -> dict[str, float]:
    """``ess``, ``rhat`` and ``ksd`` of ``n_chains`` chains of ``sampler`` (default: the
    objective's) on exp(-E) (empty when there is no sampler or no chain starts)."""
    sampler = sampler if sampler is not None else getattr(objective, "sampler", None)
    start = chain_starts(objective, n_chains, generator)
    if sampler is None or start is None:
        return {}
    target = BoltzmannTarget(objective.energy)
    with evaluation_mode(objective):
        trace: list[torch.Tensor] = []

        def record(_i: int, state: Any, _info: Any) -> None:
            with torch.no_grad():
                trace.append(objective.energy(state.position[0]).double().cpu())

        state, _ = run(sampler, target, sampler.init((start,)), n_steps, generator=generator, callback=record)
        x = state.position[0].detach()
        score = energy_score(objective.energy, x, create_graph=False)
    energies = torch.stack(trace, dim=1).numpy()[:, n_steps // 2 :]  # the first half is warm-up
    if not np.isfinite(energies).all() or not bool(torch.isfinite(x).all()):
        return {"rhat": float("inf"), "ess": 0.0, "ksd": float("inf")}
    return {
        "ess": effective_sample_size(energies),
        "rhat": split_rhat(energies),
        "ksd": kernel_stein_discrepancy(x, score),
    }


class TrainingHealth(Callback):
    """Health figures at the end of every ``every``-th epoch and of the fit (module docstring).

    Parameters
    ----------
    history:
        The fit's epoch history (the figures go into its entries).
    reference:
        Fixed training rows whose energies are followed over the fit.
    heldout:
        Held-out normal rows (``None``: no held-out figures).
    every:
        Check every ``every`` epochs.
    chains, chain_steps:
        Diagnostic chains (0: none).
    sampler:
        The chains' sampler (default: the objective's; a Langevin sampler with its full
        noise gives R-hat and ESS their meaning, a noiseless revision does not).
    seed:
        Seed of the diagnostic chains and of the validation loss's noise (the same at every
        check, so that checks differ only by the model).
    """

    def __init__(
        self,
        history: EpochHistory,
        reference: torch.Tensor,
        heldout: torch.Tensor | None = None,
        *,
        every: int = 1,
        chains: int = 0,
        chain_steps: int = 50,
        sampler: Sampler | None = None,
        seed: int = 0,
    ) -> None:
        self.sampler = sampler
        self.history = history
        self.reference = reference
        self.heldout = heldout
        self.every = every
        self.chains = chains
        self.chain_steps = chain_steps
        self.seed = seed

    @property
    def _state(self) -> dict[str, Any]:
        """What the checks carry between epochs, in the history (so checkpoints keep it):
        the reference energies of the last check and the running sum of energy gaps."""
        state: dict[str, Any] = self.history.extra.setdefault("health", {"gap": [0.0, 0]})
        return state

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        if "energy_data" in metrics and "energy_samples" in metrics:
            gap = self._state["gap"]
            self._state["gap"] = [gap[0] + metrics["energy_data"] - metrics["energy_samples"], gap[1] + 1]
        per_epoch = loop.order.per_epoch
        if loop.step % per_epoch:
            return
        epoch = loop.step // per_epoch
        if epoch % self.every and loop.step < loop.steps:
            return
        if not self.history.epochs:
            return
        figures = self.figures(loop)
        self.history.epochs[-1].update(figures)

    def figures(self, loop: Loop) -> dict[str, float]:
        """The figures of the model as it is now (the parameter average applied)."""
        objective = loop.objective
        out: dict[str, float] = {}
        state = self._state
        total, count = state["gap"]
        if count:
            out["energy_gap"] = total / count
            state["gap"] = [0.0, 0]
        with loop.averaged():
            ref = _energies(objective, self.reference.to(loop.device))
            out["energy_mean"] = float(ref.mean())
            out["energy_sd"] = float(ref.std())
            if "previous" in state:
                previous = np.asarray(state["previous"], dtype=np.float64)
                out["energy_shift"] = energy_shift(previous, ref)
                out["rank_stability"] = rank_stability(previous, ref)
                out["tail_stability"] = tail_stability(previous, ref)
            state["previous"] = ref.tolist()
            if self.heldout is not None:
                held = self.heldout.to(loop.device)
                energies = _energies(objective, held)
                out["heldout_shift"] = heldout_shift(ref, energies)
                out["heldout_rank"] = heldout_rank(ref, energies)
                loss = objective.validation_loss(held, torch.Generator(held.device).manual_seed(self.seed))
                if loss is not None:
                    out["heldout_loss"] = loss
            if self.chains and members(objective) == 1:
                gen = torch.Generator(loop.device).manual_seed(self.seed)
                out.update(chain_figures(objective, self.chains, self.chain_steps, gen, self.sampler))
        return out
