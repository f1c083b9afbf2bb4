"""Supervised training of a class energy: the cross-entropy of p(y | x) = softmax(-E(x, .)).

    L = mean_i [ E(x_i, y_i) + log sum_y exp(-E(x_i, y)) ] = mean_i CE(f(x_i), y_i),

with f(x) = -E(x, .) the logits of a :class:`~nrf.energies.classifier.ClassEnergy`
(optionally with label smoothing). This is the discriminative half of JEM; on its own it
trains the feature network of nrf's MNIST image metrics. It has no sampler: the model it
trains is p(y | x), not a density to draw from.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, Objective, StepContext


def check_class_energy(energy: nn.Module, method: str) -> Any:
    """Refuse an energy without ``logits`` / ``n_classes`` (a plain energy has no classes)."""
    if not callable(getattr(energy, "logits", None)) or not isinstance(
        getattr(energy, "n_classes", None), int
    ):
        raise TypeError(
            f"the {method!r} objective needs a class energy with logits(x) and n_classes "
            f"(e.g. nrf.energies.DigitClassifier), got {type(energy).__name__}"
        )
    return energy


def labels_of(batch: Batch, n_classes: int, method: str) -> torch.Tensor:
    """The batch's labels as class indices in [0, n_classes), or a clear error."""
    y = batch.y
    if y is None:
        raise ValueError(f"the {method!r} objective needs labelled data (the batch has no labels)")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"batch labels must be integer class indices, got dtype {y.dtype}")
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(
            f"batch labels must lie in [0, {n_classes - 1}] for a {n_classes}-class energy, "
            f"got values in [{int(y.min())}, {int(y.max())}]"
        )
    return y.long()


def class_cross_entropy(
    energy: Any, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, float]:
    """CE(f(x), y) of a class energy's logits f(x) = -E(x, .) (mean over rows, with its
    graph) and the batch accuracy of arg max f(x)."""
    logits = energy.logits(x)
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return loss, float((logits.detach().argmax(1) == y).float().mean())


@OBJECTIVES.register("classifier", aliases=("cross-entropy",), context=("energy",))
class Classifier(Objective):
    """Cross-entropy training of a class energy.

    Parameters
    ----------
    energy:
        A :class:`~nrf.energies.classifier.ClassEnergy` (``logits(x)``, ``n_classes``).
    label_smoothing:
        Mass spread uniformly over the classes in the target (0: plain cross-entropy).
    """

    def __init__(self, energy: nn.Module, *, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.energy = check_class_energy(energy, "classifier")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [p for p in self.energy.parameters() if p.requires_grad]}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        energy: Any = self.energy
        y = labels_of(batch, energy.n_classes, "classifier")
        loss, accuracy = class_cross_entropy(energy, batch.x, y, self.label_smoothing)
        ctx.update("energy", loss)
        return {"loss": float(loss.detach()), "accuracy": accuracy}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise TypeError(
            "the 'classifier' objective trains p(y | x) only and has no sampler; draw inputs from "
            "its marginal energy E(x) = -logsumexp f(x) with an nrf sampler instead"
        )
