"""WGAN with gradient penalty (Gulrajani et al., 2017), a baseline of Inclusive-NRF Table I.

The critic is the potential network, f(x) = -E(x). Per batch, ``n_critic`` critic steps
(1 in the Inclusive-NRF authors' toy code) then one generator step:

    x_hat = x_data + a (G(h) - x_data),  a ~ U(0, 1) per sample
    L_D = mean f(G(h)) - mean f(x_data) + lambda mean (|grad f(x_hat)| - 1)^2
    L_G = -mean f(G(h))
"""

from __future__ import annotations

import torch

from nrf._checks import check_positive, check_positive_int
from nrf.data.batch import Batch
from nrf.generators import LatentGenerator
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.generator_based import GeneratorObjective


@OBJECTIVES.register("wgan-gp", context=("energy", "generator"))
class WGANGP(GeneratorObjective):
    """WGAN-GP with penalty weight ``lam`` (10) and ``n_critic`` critic steps per batch."""

    def __init__(
        self, energy: torch.nn.Module, generator: LatentGenerator, lam: float = 10.0, n_critic: int = 1
    ) -> None:
        super().__init__(energy, generator)
        self.lam = check_positive("lam", lam, allow_zero=True)
        self.n_critic = check_positive_int("n_critic", n_critic)

    def training_step(self, data: Batch, ctx: StepContext) -> dict[str, float]:
        batch, n = data.x, len(data)
        for _ in range(self.n_critic):
            with torch.no_grad():
                fake = self.fake(n, ctx.generator)
            f_real, f_fake = -self.energy(batch), -self.energy(fake)
            a = torch.rand((n, *([1] * (batch.dim() - 1))), generator=ctx.generator, device=batch.device,
                           dtype=batch.dtype)  # fmt: skip
            x_hat = (batch + a * (fake - batch)).requires_grad_(True)
            (grad,) = torch.autograd.grad((-self.energy(x_hat)).sum(), x_hat, create_graph=True)
            penalty = (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
            loss_d = f_fake.mean() - f_real.mean() + self.lam * penalty
            ctx.update("energy", loss_d)
        loss_g = self.energy(self.fake(n, ctx.generator)).mean()  # = -mean f(G(h))
        ctx.update("generator", loss_g)
        return {
            "loss": float(loss_d.detach()),
            "loss_generator": float(loss_g.detach()),
            "gradient_penalty": float(penalty.detach()),
            "energy_data": float(-f_real.detach().mean()),
            "energy_samples": float(-f_fake.detach().mean()),
        }
