"""JEM, the joint energy-based model (Grathwohl et al., 2020; the tutorial 003_…, sections 6.4
and 10.3): a classifier's logits f(x) read as -E(x, y), trained on

    L = classifier_weight CE(f(x), y) + generative_weight L_gen,

where L_gen is the IGEBM loss (:class:`~nrf.objectives.IGEBM`) of the marginal energy
E(x) = -log sum_y exp(f(x)[y]), its negatives drawn by SGLD from a replay buffer. The
classifier is p(y | x) = softmax(f(x)); the generative term makes log p(x) = -E(x) - log Z
a density over inputs (used for samples, calibration and out-of-distribution scores).
With ``generative_weight = 0`` this is the plain classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import nn

from nrf._checks import check_positive
from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.classifier import check_class_energy, labels_of
from nrf.objectives.igebm import IGEBM
from nrf.samplers import Sampler
from nrf.targets import BoltzmannTarget, Target


@OBJECTIVES.register("jem", context=("energy", "sampler", "target"))
class JEM(IGEBM):
    """JEM on a class energy (``logits(x)``, ``n_classes``), e.g.
    :class:`~nrf.energies.TutorialCNNClassifier`.

    Parameters (beyond :class:`~nrf.objectives.IGEBM`'s, with JEM's defaults: 20 SGLD steps,
    alpha 0, data noise 0.03 as in the JEM code)
    ----------
    classifier_weight, generative_weight:
        The weights of the cross-entropy and of the generative loss.
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler,
        k: int = 20,
        start: str = "buffer",
        *,
        classifier_weight: float = 1.0,
        generative_weight: float = 1.0,
        alpha: float = 0.0,
        buffer_size: int = 10000,
        reinit_prob: float = 0.05,
        noise_range: tuple[float, float] = (-1.0, 1.0),
        n_particles: int | None = None,
        loss: str = "ml",
        data_noise: float = 0.03,
        data_clamp: tuple[float, float] | None = None,
        kl_weight: float = 0.0,
        kl_steps: int = 1,
        target: Callable[[nn.Module], Target] = BoltzmannTarget,
    ) -> None:
        check_class_energy(energy, "jem")
        super().__init__(
            energy, sampler, k, start, alpha=alpha, buffer_size=buffer_size, reinit_prob=reinit_prob,
            noise_range=noise_range, n_particles=n_particles, loss=loss, data_noise=data_noise,
            data_clamp=data_clamp, kl_weight=kl_weight, kl_steps=kl_steps, target=target,
        )  # fmt: skip
        self.classifier_weight = check_positive("classifier_weight", classifier_weight, allow_zero=True)
        self.generative_weight = check_positive("generative_weight", generative_weight, allow_zero=True)
        if self.classifier_weight == 0 and self.generative_weight == 0:
            raise ValueError("classifier_weight and generative_weight cannot both be 0")

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        energy: Any = self.energy
        y = labels_of(batch, energy.n_classes, "jem")
        logits = energy.logits(batch.x)
        loss_ce = F.cross_entropy(logits, y)
        loss = self.classifier_weight * loss_ce
        parts: dict[str, float] = {}
        if self.generative_weight > 0:
            loss_gen, parts = self.generative_loss(batch.x, ctx.generator)
            loss = loss + self.generative_weight * loss_gen
        ctx.update("energy", loss)
        return {
            "loss": float(loss.detach()),
            "loss_ce": float(loss_ce.detach()),
            "accuracy": float((logits.detach().argmax(1) == y).float().mean()),
            **parts,
        }
