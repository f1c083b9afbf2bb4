"""Denoising score matching of an energy (Vincent 2011; Saremi et al. 2018, "Deep Energy
Estimator Networks"), with one noise level or several (Li, Chen & Sommer 2019,
"multiscale denoising score matching").

The model's score is s(x) = -grad_x E(x). Each row x of the batch is perturbed,
x~ = x + sigma eps with eps ~ N(0, I) and sigma drawn uniformly from ``sigmas``, and the
energy's input gradient is regressed onto the denoising direction:

    L = 1/2 mean_i | grad_x E(x~_i) - (x~_i - x_i) / sigma_0^2 |^2  *  sigma_0^2,

with sigma_0 = ``sigma`` the reference level (the smallest of ``sigmas`` by default).
With one level (sigma = sigma_0) this is Vincent's loss with weight sigma^2,
1/2 | sigma grad E(x~) - eps |^2, whose minimizer is the score of the smoothed density
p_sigma = p_data * N(0, sigma^2 I): E = -log p_sigma + const (Saremi et al.'s DEEN). With
several levels one energy serves them all: x~ - sigma_0^2 grad E(x~) estimates the clean
x, and E is a smoothed density whose scale mixes the levels (for Gaussian data
N(mu, Sigma), the minimizer among quadratic energies has precision
P = (sum_k sigma_k^2) / (sigma_0^2 sum_k (Sigma + sigma_k^2 I)), see
:meth:`DenoisingScoreMatching.gaussian_precision`).

Score matching learns no normalizer: the energy is defined up to a constant, which does
not matter for sampling, ranking rows (anomaly scores) or restoration.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_positive
from nrf.data.batch import Batch
from nrf.nn import evaluation_mode
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.score import DataStartObjective, energy_score
from nrf.samplers import Sampler


def check_levels(sigmas: Sequence[float] | float) -> tuple[float, ...]:
    """The noise levels as a non-empty tuple of positive floats."""
    values = (sigmas,) if isinstance(sigmas, int | float) else tuple(sigmas)
    if not values:
        raise ValueError("sigmas must hold at least one noise level, got an empty sequence")
    return tuple(check_positive("sigmas", float(s)) for s in values)


def denoising_loss(
    energy: nn.Module,
    x: torch.Tensor,
    noise: torch.Tensor,
    levels: torch.Tensor,
    sigma: float,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """The denoising score-matching loss of rows ``x`` for standard normal ``noise`` of the
    same shape, one level per row (``levels``, ``(batch,)``) and the reference level
    ``sigma``, in the coordinates u = x / scale (``scale``: one positive number per feature,
    ``None``: 1):

        x~ = x + level * scale * noise,
        L = 1/2 sigma^2 mean_i | scale * grad_x E(x~_i) - level_i noise_i / sigma^2 |^2,

    which is the module docstring's loss in u (grad_u E = scale * grad_x E). The graph is
    kept: the loss is differentiated by the energy's parameters."""
    shape = (-1, *([1] * (x.dim() - 1)))
    level = levels.view(shape).to(x)
    unit = torch.ones_like(x[:1]) if scale is None else scale.to(x)
    noisy = x + level * unit * noise
    grad = -energy_score(energy, noisy, create_graph=True)
    residual = (unit * grad - level * noise / sigma**2).flatten(1)
    return 0.5 * sigma**2 * residual.pow(2).sum(1).mean()


@OBJECTIVES.register("dsm", aliases=("denoising-score-matching", "mdsm"), context=("energy", "sampler"))
class DenoisingScoreMatching(DataStartObjective):
    """Single- or multi-level denoising score matching.

    Parameters
    ----------
    energy:
        The model, ``energy(x) -> (batch,)``; it must be differentiable in x (smooth
        activations such as softplus, tanh or swish learn a better score than ReLU).
    sampler:
        Sampler used by :meth:`sample` only (training needs none); ``None``: a sampler
        has to be given to draw samples.
    sigmas:
        Noise level(s); one number or a sequence (each row draws one uniformly).
    sigma:
        The reference level sigma_0 (default: the smallest of ``sigmas``).
    sample_steps:
        Sampler steps of :meth:`sample`, started from the training data's moments.
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler | None = None,
        sigmas: Sequence[float] | float = 0.1,
        *,
        sigma: float | None = None,
        sample_steps: int = 100,
    ) -> None:
        super().__init__(energy, sampler, sample_steps)
        self.sigmas = check_levels(sigmas)
        self.sigma = min(self.sigmas) if sigma is None else check_positive("sigma", sigma)

    def loss(self, x: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The loss of the module docstring for rows ``x``, standard normal ``noise`` of the
        same shape and one noise level per row (``levels``, shape ``(batch,)``)."""
        return denoising_loss(self.energy, x, noise, levels, self.sigma)

    def draw(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standard normal noise shaped like ``x`` and one level of ``sigmas`` per row."""
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        pick = torch.randint(len(self.sigmas), (x.shape[0],), generator=generator, device=x.device)
        levels = torch.tensor(self.sigmas, dtype=x.dtype).to(x.device)[pick]
        return noise, levels

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        loss = self.loss(batch.x, *self.draw(batch.x, ctx.generator))
        ctx.update("energy", loss)
        return {"loss": float(loss.detach())}

    def validation_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float | None:
        with evaluation_mode(self):
            return float(self.loss(x, *self.draw(x, generator)).detach())

    @staticmethod
    def gaussian_precision(covariance: torch.Tensor, sigmas: Sequence[float], sigma: float) -> torch.Tensor:
        """The precision of the quadratic energy minimizing the loss for data N(mu, covariance)
        (the minimizer's mean is mu): (sum_k s_k^2) (sigma^2 sum_k (covariance + s_k^2 I))^-1."""
        levels = check_levels(sigmas)
        eye = torch.eye(covariance.shape[0], dtype=covariance.dtype)
        total = sum(covariance + s**2 * eye for s in levels)
        return sum(s**2 for s in levels) / sigma**2 * torch.linalg.inv(total)
