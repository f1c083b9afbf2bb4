"""Feed-forward transition model: the next state regressed on the context by mean squared
error (the baseline of 001_… Fig. 8 and 002_… Fig. 13).

With f the :class:`~nrf.energies.TransitionPredictor`, per batch of (context c, next state
x+)

    L = mean_rows ||f(c) - x+||^2 / d,

the maximum-likelihood loss of the Gaussian energy E(x | c) = ||x - f(c)||^2 / 2 up to
constants; the prediction (:meth:`predict`) is f(c).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, Objective, StepContext
from nrf.objectives.transition_ebm import check_transition_model, context_of, set_state_normalization


@OBJECTIVES.register("transition-regression", context=("energy",))
class TransitionRegression(Objective):
    """Mean-squared-error training of a :class:`~nrf.energies.TransitionPredictor`."""

    def __init__(self, energy: nn.Module) -> None:
        super().__init__()
        self.energy = check_transition_model(energy, "transition-regression")
        if not callable(getattr(energy, "predict", None)):
            raise TypeError(
                "the 'transition-regression' objective needs a TransitionPredictor, "
                f"got {type(energy).__name__}"
            )

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [p for p in self.energy.parameters() if p.requires_grad]}

    def initialize_batch(self, batch: Batch) -> None:
        set_state_normalization(self.energy, batch)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        context = context_of(batch, "transition-regression")
        model: Any = self.energy
        pred = model.predict(context)
        loss = (pred - batch.x).pow(2).mean()
        ctx.update("energy", loss)
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def predict(self, context: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """f(context) in evaluation mode (``generator`` unused: the prediction is deterministic)."""
        was = self.energy.training
        self.energy.eval()
        try:
            model: Any = self.energy
            out: torch.Tensor = model.predict(context)
        finally:
            self.energy.train(was)
        return out

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise TypeError(
            "a transition model predicts next states given a context: use predict(context) or "
            "nrf.applications.trajectories.rollout"
        )
