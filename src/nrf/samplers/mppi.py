"""MPPI proposals (IGEBM workshop paper, Eq. 5; Williams et al., 2017).

Each transition draws K Gaussian perturbations of the current x and moves to their
average weighted by the Boltzmann weights of the target:

    x_i = x + sigma * eta_i,    eta_i ~ N(0, I),  i = 1..K
    w_i = softmax_i(log p(x_i) / T)
    x'  = sum_i w_i x_i

MPPI is a mode-seeking stochastic search, not an exact MCMC kernel: its chains
concentrate around modes rather than reproduce the target's spread. It needs only
log-density values (no gradients), which suits low-dimensional or non-differentiable
energies.
"""

from __future__ import annotations

from typing import Any

import torch

from nrf._checks import check_positive, check_positive_int
from nrf.samplers.base import GRADIENT_ARGS, SAMPLERS, ChainState, GradientSampler, GradientStepInfo, advance
from nrf.targets.base import Target


def mppi_update(candidates: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted average of ``candidates`` ``(K, batch, ...)`` with ``log_weights``
    ``(K, batch)`` (pure)."""
    w = torch.softmax(log_weights, dim=0)
    return (w.view(*w.shape, *([1] * (candidates.dim() - 2))) * candidates).sum(0)


@SAMPLERS.register("mppi", converters=GRADIENT_ARGS)
class MPPI(GradientSampler):
    """MPPI with ``n_samples`` (K) perturbations of standard deviation ``step_size`` (sigma).

    Works on single-tensor positions ``(x,)``. ``step_size`` is the perturbation scale
    (it follows a schedule like the gradient samplers' step, though no gradient is used).

    >>> from nrf.energies import GaussianEnergy
    >>> from nrf.targets import BoltzmannTarget
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> sampler = MPPI(step_size=0.3, n_samples=5)
    >>> state, _ = sampler.step(target, sampler.init(torch.ones(4, 2)), torch.Generator().manual_seed(0))
    >>> state.x.shape
    torch.Size([4, 2])
    """

    def __init__(self, step_size: float, n_samples: int = 5, *, temperature: float = 1.0) -> None:
        super().__init__(step_size)
        self.n_samples = check_positive_int("n_samples", n_samples)
        self.temperature = check_positive("temperature", temperature)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "n_samples": self.n_samples, "temperature": self.temperature}

    def step(
        self, target: Target, state: ChainState, generator: torch.Generator | None = None
    ) -> tuple[ChainState, GradientStepInfo]:
        if len(state.position) != 1:
            raise ValueError(
                f"MPPI samples a single tensor x, got a position of {len(state.position)} tensors"
            )
        sigma = self.step_size(state.step)
        x = state.x
        eta = torch.randn((self.n_samples, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
        # each candidate is a batch of chains like x: the target projects and scores it as one
        candidates = torch.stack([target.project((x + sigma * e,))[0] for e in eta])
        with torch.no_grad():
            logp = torch.stack([target.log_prob((c,)) for c in candidates])
        x_new = mppi_update(candidates, logp / self.temperature)
        return advance(state, position=target.project((x_new,))), GradientStepInfo(step_size=sigma)
