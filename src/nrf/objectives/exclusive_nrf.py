"""Exclusive-NRF (Kim & Bengio, 2016, as in the Inclusive-NRF authors' ``toy_EBGM.py``), a
baseline of Inclusive-NRF Table I: the generator is trained by the *exclusive*
KL(q || p) = E_q[E(x)] - H[q] + const, with an entropy surrogate.

Per batch (fresh generator samples for each update):

    L_E = mean E(x_data) - mean E(G(h))
    L_G = mean E(G(h)) - w * sum_k log(gamma_k^2)

where gamma are the scale parameters of the generator's batch-norm layers (the entropy
surrogate of Kim & Bengio; ``entropy_weight`` w = 0.01 in the authors' code), summed per
model (for an ensemble generator the logged ``entropy_surrogate`` is the members' mean).
"""

from __future__ import annotations

import torch
from torch import nn

from nrf._checks import check_positive
from nrf.data.batch import Batch
from nrf.generators import LatentGenerator
from nrf.nn.ensemble import batch_norm_log_scales
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.generator_based import GeneratorObjective


@OBJECTIVES.register("exclusive", aliases=("exclusive-nrf",), context=("energy", "generator"))
class ExclusiveNRF(GeneratorObjective):
    """Exclusive-NRF with the batch-norm entropy surrogate."""

    def __init__(self, energy: nn.Module, generator: LatentGenerator, entropy_weight: float = 0.01) -> None:
        super().__init__(energy, generator)
        self.entropy_weight = check_positive("entropy_weight", entropy_weight, allow_zero=True)
        norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self.bn_scales = [m.weight for m in norms if m.weight is not None]
        if entropy_weight > 0 and not self.bn_scales:
            raise ValueError(
                "entropy_weight > 0 needs a generator with batch-norm scales (the entropy surrogate)"
            )

    def entropy_surrogate(self) -> torch.Tensor:
        """sum_k log(gamma_k^2) over the generator's batch-norm scales (per model)."""
        return batch_norm_log_scales(self.generator)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        n = len(batch)
        with torch.no_grad():
            fake = self.fake(n, ctx.generator)
        e_data, e_fake = self.energy(batch.x), self.energy(fake)
        loss_e = e_data.mean() - e_fake.mean()
        ctx.update("energy", loss_e)
        e_gen = self.energy(self.fake(n, ctx.generator))
        entropy = self.entropy_surrogate()
        loss_g = e_gen.mean() - self.entropy_weight * entropy
        ctx.update("generator", loss_g)
        return {
            "loss": float(loss_e.detach()),
            "loss_generator": float(loss_g.detach()),
            "entropy_surrogate": float(entropy.detach()),
            "energy_data": float(e_data.detach().mean()),
            "energy_samples": float(e_fake.detach().mean()),
        }
