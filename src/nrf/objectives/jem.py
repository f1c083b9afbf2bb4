"""JEM, the joint energy-based model (Grathwohl et al., 2020; the tutorial 003_…, sections 6.4
and 10.3): a classifier's logits f(x) read as -E(x, y), trained on

    L = classifier_weight CE(f(x), y) + generative_weight L_gen,

where L_gen is the IGEBM loss (:class:`~nrf.objectives.IGEBM`) of the marginal energy
E(x) = -log sum_y exp(f(x)[y]), its negatives drawn by SGLD from a replay buffer. The
classifier is p(y | x) = softmax(f(x)); the generative term makes log p(x) = -E(x) - log Z
a density over inputs (used for samples, calibration and out-of-distribution scores).
With ``generative_weight = 0`` this is the plain classifier.

The generative term can start late and rise: at update t (from 0) its weight is

    w_t = 0 for t < generative_start,
    w_t = generative_weight min(1, (t - generative_start + 1) / generative_ramp) after

(``generative_ramp = 0``: the full weight at once), so a run can train the classifier first
and then make it a density; updates with w_t = 0 draw no negatives. Every
``gradient_stats_every`` updates the step also logs the norms of the two terms' parameter
gradients, |grad CE| and |grad L_gen|, and their cosine (two extra backward passes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nrf._checks import check_positive, check_positive_int
from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.classifier import check_class_energy, class_cross_entropy, labels_of
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
    generative_start, generative_ramp:
        Updates of cross-entropy only, then updates over which the generative weight rises
        linearly to ``generative_weight`` (see the module docstring).
    gradient_stats_every:
        Log ``grad_norm_ce``, ``grad_norm_gen`` and ``grad_cosine`` every this many updates
        (0: never).
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
        generative_start: int = 0,
        generative_ramp: int = 0,
        gradient_stats_every: int = 0,
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
        self.generative_start = check_positive_int("generative_start", generative_start, allow_zero=True)
        self.generative_ramp = check_positive_int("generative_ramp", generative_ramp, allow_zero=True)
        self.gradient_stats_every = check_positive_int(
            "gradient_stats_every", gradient_stats_every, allow_zero=True
        )

    def generative_weight_at(self, step: int) -> float:
        """w_t of the module docstring at update ``step`` (counted from 0)."""
        if step < self.generative_start:
            return 0.0
        if self.generative_ramp == 0:
            return self.generative_weight
        return self.generative_weight * min(1.0, (step - self.generative_start + 1) / self.generative_ramp)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        energy: Any = self.energy
        y = labels_of(batch, energy.n_classes, "jem")
        loss_ce, accuracy = class_cross_entropy(energy, batch.x, y)
        loss = self.classifier_weight * loss_ce
        parts: dict[str, float] = {}
        weight = self.generative_weight_at(ctx.step)
        loss_gen = None
        if weight > 0:
            loss_gen, parts = self.generative_loss(batch.x, ctx.generator)
            loss = loss + weight * loss_gen
            parts["generative_weight"] = weight
        every = self.gradient_stats_every
        if every and ctx.step % every == 0:
            parts.update(gradient_stats(self.energy, loss_ce, loss_gen))
        ctx.update("energy", loss)
        return {
            "loss": float(loss.detach()),
            "loss_ce": float(loss_ce.detach()),
            "accuracy": accuracy,
            **parts,
        }


def gradient_stats(module: nn.Module, loss_a: torch.Tensor, loss_b: torch.Tensor | None) -> dict[str, float]:
    """``grad_norm_ce`` = |d loss_a / d theta| over ``module``'s trainable parameters and,
    when ``loss_b`` is given, ``grad_norm_gen`` = |d loss_b / d theta| and the cosine of the
    two gradients (``grad_cosine``); the graphs are kept for the update that follows."""
    params = [p for p in module.parameters() if p.requires_grad]

    def flat(loss: torch.Tensor) -> torch.Tensor:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        parts = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
        return torch.cat([g.reshape(-1) for g in parts])

    g_a = flat(loss_a)
    out = {"grad_norm_ce": float(g_a.norm())}
    if loss_b is not None:
        g_b = flat(loss_b)
        out["grad_norm_gen"] = float(g_b.norm())
        out["grad_cosine"] = float(F.cosine_similarity(g_a, g_b, dim=0))
    return out
