"""Sliced score matching of an energy (Song, Garg, Shi & Ermon 2019).

Hyvaerinen's score matching objective, E_data[ tr(grad_x s(x)) + 1/2 |s(x)|^2 ] with the
model's score s(x) = -grad_x E(x), needs the Hessian's trace; sliced score matching
replaces it by random projections v (``n_projections`` per row, standard normal or
Rademacher):

    L = mean_{i, v} [ v^T grad_x (v^T s(x_i)) + 1/2 (v^T s(x_i))^2 ],

and the variance-reduced form (``variance_reduction=True``, for projections with
E[v v^T] = I) takes the second term's expectation in closed form:

    L_VR = mean_{i, v} [ v^T grad_x (v^T s(x_i)) ] + 1/2 mean_i |s(x_i)|^2 .

Both need one Hessian-vector product per projection (a second backward pass). The
minimizer over a model family that contains the data density is the data density up to a
constant (for Gaussian data and quadratic energies: the true mean and precision). Data
on a lower-dimensional set (e.g. image pixels that are always 0) has no finite optimum:
the curvature along the constant directions grows without bound, and the loss falls
without limit (denoising score matching has no such problem).
"""

from __future__ import annotations

import torch
from torch import nn

from nrf._checks import check_bool, check_choice, check_positive_int
from nrf.data.batch import Batch
from nrf.nn import evaluation_mode
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.score import DataStartObjective, energy_score
from nrf.samplers import Sampler

PROJECTIONS = ("gaussian", "rademacher")


@OBJECTIVES.register("ssm", aliases=("sliced-score-matching",), context=("energy", "sampler"))
class SlicedScoreMatching(DataStartObjective):
    """Sliced score matching, plain or variance-reduced.

    Parameters
    ----------
    energy:
        The model; twice differentiable in x (smooth activations).
    sampler:
        Sampler used by :meth:`sample` only; ``None`` to train without one.
    n_projections:
        Random projections per row and update.
    projection:
        ``"gaussian"`` (v ~ N(0, I)) or ``"rademacher"`` (entries +-1).
    variance_reduction:
        Use L_VR (the closed-form 1/2 |s|^2 term).
    sample_steps:
        Sampler steps of :meth:`sample`, started from the training data's moments.
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler | None = None,
        n_projections: int = 1,
        *,
        projection: str = "gaussian",
        variance_reduction: bool = True,
        sample_steps: int = 100,
    ) -> None:
        super().__init__(energy, sampler, sample_steps)
        self.n_projections = check_positive_int("n_projections", n_projections)
        self.projection = check_choice("projection", projection, PROJECTIONS)
        self.variance_reduction = check_bool("variance_reduction", variance_reduction)

    def loss(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The loss for rows ``x`` and projections ``v`` of shape ``(M, *x.shape)``."""
        xg = x.detach().requires_grad_(True)
        score = energy_score(self.energy, xg, create_graph=True).flatten(1)
        flat_v = v.flatten(2)  # (M, B, D)
        proj = (flat_v * score.unsqueeze(0)).sum(2)  # v^T s, (M, B)
        rows = []
        for k in range(v.shape[0]):  # one Hessian-vector product per projection
            (g,) = torch.autograd.grad(proj[k].sum(), xg, create_graph=True)
            rows.append((flat_v[k] * g.flatten(1)).sum(1))
        trace_term = torch.stack(rows).mean(0)
        second = 0.5 * score.pow(2).sum(1) if self.variance_reduction else 0.5 * proj.pow(2).mean(0)
        return (trace_term + second).mean()

    def projections(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``n_projections`` random directions per row, shape ``(M, *x.shape)``."""
        shape = (self.n_projections, *x.shape)
        if self.projection == "gaussian":
            return torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
        return (2 * bits - 1).to(x.dtype)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        loss = self.loss(batch.x, self.projections(batch.x, ctx.generator))
        ctx.update("energy", loss)
        return {"loss": float(loss.detach())}

    def validation_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float | None:
        with evaluation_mode(self):
            return float(self.loss(x, self.projections(x, generator)).detach())
