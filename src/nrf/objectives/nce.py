"""Noise-contrastive estimation of an energy with a known noise density (Gutmann &
Hyvaerinen 2010, 2012).

The model is log p(x) = -E(x) - c with a learned log-normalizer c. With noise rows y drawn
from a density q that can be evaluated, nu noise rows per data row (``noise_ratio``) and
G(u) = log p(u) - log q(u) - log nu, the logistic loss

    L = - mean_data log sigmoid(G(x)) - nu mean_noise log sigmoid(-G(y))

is minimized by p = p_data (and c = log Z) when the model family contains it: NCE learns the
normalizer, which score matching cannot. The noise is

* ``"gaussian"``: N(m, S + lambda I) fitted to the data at :meth:`initialize`, m and S the
  data's mean and covariance and lambda = ``noise_shrinkage`` x mean variance (which keeps
  S + lambda I invertible for data with constant features, e.g. image borders);
* ``"diagonal"``: N(m, diag(s^2)) with the data's per-feature variances (plus lambda);
* a :class:`torch.distributions.Distribution` of the user over flattened rows (with
  ``sample`` and ``log_prob``).

The fit is only as good as the noise is close to the data: with noise far from it the
classifier separates the two easily and its gradient carries little information.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, MultivariateNormal, Normal

from nrf._checks import check_positive, check_positive_int
from nrf.data.batch import Batch
from nrf.nn import evaluation_mode
from nrf.nn.ensemble import ensemble_size
from nrf.objectives.base import OBJECTIVES, StepContext, paired_energies
from nrf.objectives.score import DataStartObjective
from nrf.samplers import Sampler

NOISES = ("gaussian", "diagonal")


@OBJECTIVES.register("nce", aliases=("noise-contrastive",), context=("energy", "sampler"))
class NoiseContrastiveEstimation(DataStartObjective):
    """NCE with a fitted Gaussian or a given noise density.

    Parameters
    ----------
    energy:
        The model's energy E(x); the log-density is -E(x) - ``log_normalizer``.
    sampler:
        Sampler used by :meth:`sample` only; ``None`` to train without one.
    noise:
        ``"gaussian"``, ``"diagonal"`` (fitted to the data) or a distribution over rows
        flattened to vectors.
    noise_ratio:
        nu, noise rows per data row (a positive integer).
    noise_shrinkage:
        lambda of the fitted noise, relative to the data's mean variance.
    sample_steps:
        Sampler steps of :meth:`sample`, started from the training data's moments.
    """

    lazy_buffers = ("data_mean", "data_std", "noise_mean", "noise_scale_tril")
    noise_mean: torch.Tensor
    noise_scale_tril: torch.Tensor

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler | None = None,
        noise: str | Distribution = "gaussian",
        *,
        noise_ratio: int = 1,
        noise_shrinkage: float = 0.01,
        sample_steps: int = 100,
    ) -> None:
        if ensemble_size(energy) > 1:
            raise ValueError(
                "the 'nce' objective learns one log-normalizer; train ensemble members one by one"
            )
        super().__init__(energy, sampler, sample_steps)
        if not isinstance(noise, Distribution) and noise not in NOISES:
            raise ValueError(
                f"noise must be 'gaussian', 'diagonal' or a torch.distributions.Distribution, got {noise!r}"
            )
        self.noise = noise
        self.noise_ratio = check_positive_int("noise_ratio", noise_ratio)
        self.noise_shrinkage = check_positive("noise_shrinkage", noise_shrinkage, allow_zero=True)
        self.log_normalizer = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_mean", torch.zeros(0))
        self.register_buffer("noise_scale_tril", torch.zeros(0))

    def config_args(self) -> dict[str, Any]:
        args = super().config_args() if isinstance(self.noise, str) else {
            "noise": repr(self.noise), "noise_ratio": self.noise_ratio,
            "noise_shrinkage": self.noise_shrinkage, "sample_steps": self.sample_steps,
        }  # fmt: skip
        return args

    def initialize(self, data: torch.Tensor) -> None:
        super().initialize(data)
        flat = data.flatten(1).double()
        if flat.shape[0] < 2:
            raise ValueError(f"fitting the NCE noise needs at least 2 rows, got {flat.shape[0]}")
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / (flat.shape[0] - 1)
        shrink = self.noise_shrinkage * float(torch.diagonal(cov).mean()) + 1e-12
        if self.noise == "diagonal":
            scale = torch.diag(torch.sqrt(torch.diagonal(cov) + shrink))
        else:
            scale = torch.linalg.cholesky(cov + shrink * torch.eye(cov.shape[0], dtype=cov.dtype))
        self.noise_mean = mean.to(data.dtype)
        self.noise_scale_tril = scale.to(data.dtype)

    def noise_distribution(self) -> Distribution:
        """q over flattened rows."""
        if isinstance(self.noise, Distribution):
            return self.noise
        if self.noise_mean.numel() == 0:
            raise RuntimeError("the NCE noise is not fitted: initialize the objective on data first")
        if self.noise == "diagonal":
            return Normal(self.noise_mean, torch.diagonal(self.noise_scale_tril))
        return MultivariateNormal(self.noise_mean, scale_tril=self.noise_scale_tril)

    def noise_log_prob(self, flat: torch.Tensor) -> torch.Tensor:
        q = self.noise_distribution()
        out = q.log_prob(flat)
        return out.sum(-1) if out.dim() == 2 else out

    def draw_noise(self, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` noise rows shaped like the rows of ``like`` (the fitted Gaussians use
        ``generator``; a user's distribution draws from torch's global stream)."""
        d = like[0].numel()
        if isinstance(self.noise, Distribution):
            flat = self.noise.sample((n,)).to(like)
        else:
            z = torch.randn((n, d), generator=generator, device=like.device, dtype=like.dtype)
            if self.noise == "diagonal":
                flat = self.noise_mean + z * torch.diagonal(self.noise_scale_tril)
            else:
                flat = self.noise_mean + z @ self.noise_scale_tril.T
        if flat.shape != (n, d):
            raise ValueError(
                f"the noise distribution gave samples of shape {tuple(flat.shape)}, expected ({n}, {d})"
            )
        return flat.view(n, *like.shape[1:])

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [*super().optimizer_groups()["energy"], self.log_normalizer]}

    def log_density(self, x: torch.Tensor, energies: torch.Tensor | None = None) -> torch.Tensor:
        """The normalized model log-density -E(x) - c."""
        e = self.energy(x) if energies is None else energies
        return -e - self.log_normalizer

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The NCE loss for data rows ``x`` and noise rows ``y``, and the classifier's accuracy."""
        e_x, e_y = paired_energies(self.energy, x, y)
        log_nu = math.log(self.noise_ratio)
        g_x = self.log_density(x, e_x) - self.noise_log_prob(x.flatten(1)) - log_nu
        g_y = self.log_density(y, e_y) - self.noise_log_prob(y.flatten(1)) - log_nu
        loss = -F.logsigmoid(g_x).mean() - self.noise_ratio * F.logsigmoid(-g_y).mean()
        accuracy = 0.5 * (float((g_x > 0).float().mean()) + float((g_y < 0).float().mean()))
        return loss, accuracy

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        x = batch.x
        y = self.draw_noise(self.noise_ratio * x.shape[0], x, ctx.generator)
        loss, accuracy = self.loss(x, y)
        ctx.update("energy", loss)
        return {"loss": float(loss.detach()), "noise_accuracy": accuracy,
                "log_normalizer": float(self.log_normalizer.detach())}  # fmt: skip

    def validation_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float | None:
        with evaluation_mode(self), torch.no_grad():
            y = self.draw_noise(self.noise_ratio * x.shape[0], x, generator)
            return float(self.loss(x, y)[0])
