"""GAN with the log-D trick (Goodfellow et al., 2014), a baseline of Inclusive-NRF Table I.

The discriminator is the potential network, read as the logit l(x) = -E(x) of
D(x) = sigmoid(l(x)). Per batch, one discriminator step then one generator step:

    L_D = -mean log D(x_data) - mean log(1 - D(G(h))) = mean softplus(-l(x_data)) + mean softplus(l(G(h)))
    L_G = -mean log D(G(h)) = mean softplus(-l(G(h)))          (the non-saturating "log D trick")
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.generator_based import GeneratorObjective


@OBJECTIVES.register("gan", context=("energy", "generator"))
class GAN(GeneratorObjective):
    """GAN with the log-D trick on the same networks as the NRFs."""

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        n = len(batch)
        with torch.no_grad():
            fake = self.fake(n, ctx.generator)
        logit_real, logit_fake = -self.energy(batch.x), -self.energy(fake)
        loss_d = F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()
        ctx.update("energy", loss_d)
        logit_gen = -self.energy(self.fake(n, ctx.generator))
        loss_g = F.softplus(-logit_gen).mean()
        ctx.update("generator", loss_g)
        return {
            "loss": float(loss_d.detach()),
            "loss_generator": float(loss_g.detach()),
            "energy_data": float(-logit_real.detach().mean()),
            "energy_samples": float(-logit_fake.detach().mean()),
        }
