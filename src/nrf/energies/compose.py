"""Energies made of energies: weighted sums (products of experts) and tempering.

    SumEnergy:        E(x) = sum_i w_i E_i(x)     (p ∝ prod_i p_i^{w_i}, IGEBM's composition)
    TemperedEnergy:   E(x) = E_0(x) / T           (p ∝ p_0^{1/T}; T > 1 flattens, T < 1 sharpens)
    ChainMeanEnergy:  E(x) = E_0(x) / B           (B the rows of each model in the batch: the
                                                   gradient of the batch's mean energy per row)
    ConditionedEnergy: E(x_i) = E_0(x_i, y_i)     (a class energy with each row's class fixed:
                                                   chains conditioned on their own labels)

They are ordinary energies: every target, sampler, metric and the detector take them, and
they keep the ensemble layout of what they wrap (``n_models``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nrf._checks import check_positive
from nrf.energies.classifier import ClassEnergy, check_labels
from nrf.nn.ensemble import ensemble_size, rows_per_member


class SumEnergy(nn.Module):
    """sum_i w_i E_i(x) over experts defined on the same x.

    >>> from nrf.energies import GaussianEnergy
    >>> e = SumEnergy([GaussianEnergy(torch.zeros(2), torch.eye(2))] * 2, [1.0, 0.5])
    >>> e(torch.ones(3, 2)).shape
    torch.Size([3])
    """

    def __init__(self, energies: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if len(energies) == 0:
            raise ValueError("energies must hold at least one energy")
        self.experts = nn.ModuleList(energies)
        if weights is None:
            weights = [1.0] * len(self.experts)
        if len(weights) != len(self.experts):
            raise ValueError(f"weights must have {len(self.experts)} entries, got {len(weights)}")
        self.weights = [check_positive(f"weights[{i}]", w) for i, w in enumerate(weights)]
        shapes = {tuple(getattr(e, "event_shape", ())) for e in self.experts}
        if len(shapes) == 1:
            self.event_shape = shapes.pop()
        members = {ensemble_size(e) for e in self.experts}
        if len(members) != 1:
            raise ValueError(f"energies must have one number of ensemble members, got {sorted(members)}")
        self.n_models = members.pop()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor = self.weights[0] * self.experts[0](x)
        for w, e in zip(self.weights[1:], self.experts[1:], strict=True):
            total = total + w * e(x)
        return total


class TemperedEnergy(nn.Module):
    """E_0(x) / T: the density p_0(x)^{1/T} (up to normalization).

    >>> from nrf.energies import GaussianEnergy
    >>> base = GaussianEnergy(torch.zeros(1), torch.eye(1))
    >>> x = torch.ones(1, 1)
    >>> bool(torch.allclose(TemperedEnergy(base, 2.0)(x), base(x) / 2))
    True
    """

    def __init__(self, energy: nn.Module, temperature: float) -> None:
        super().__init__()
        self.energy = energy
        self.temperature = check_positive("temperature", temperature)
        self.n_models = ensemble_size(energy)
        if hasattr(energy, "event_shape"):
            self.event_shape = energy.event_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.energy(x)
        return out if self.temperature == 1.0 else out / self.temperature


class ChainMeanEnergy(nn.Module):
    """E_0(x) / B, with B the rows of each model in the batch (all rows for a plain network,
    rows per member for an ensemble): samplers then follow the gradient of each model's
    mean energy over its chains instead of each chain's own energy (the ``grad_reduction =
    "mean"`` option of Inclusive-NRF).

    >>> from nrf.energies import GaussianEnergy
    >>> base = GaussianEnergy(torch.zeros(1), torch.eye(1))
    >>> x = torch.ones(4, 1)
    >>> bool(torch.allclose(ChainMeanEnergy(base)(x), base(x) / 4))
    True
    """

    def __init__(self, energy: nn.Module) -> None:
        super().__init__()
        self.energy = energy
        self.n_models = ensemble_size(energy)
        if hasattr(energy, "event_shape"):
            self.event_shape = energy.event_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.energy(x)
        return out / rows_per_member(self.energy, x.shape[0])


class ConditionedEnergy(nn.Module):
    """A class energy E_0(x, y) with one fixed class per row: row i of a batch is scored as
    E_0(x_i, y_i) through ``energy.class_energy`` (so a sampler's chains each follow the
    density of their own class). Batches must have as many rows as ``y``. The labels of a
    :class:`~nrf.energies.classifier.ClassEnergy` are checked once, here, not at every call.

    >>> from nrf.energies import DigitClassifier
    >>> net = DigitClassifier().eval()
    >>> x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    >>> bool(torch.allclose(ConditionedEnergy(net, y)(x), net.class_energy(x, y)))
    True
    """

    def __init__(self, energy: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        if not callable(getattr(energy, "class_energy", None)):
            raise TypeError(
                f"energy must have class_energy(x, y) (a class energy), got {type(energy).__name__}"
            )
        self.energy: Any = energy
        self.y = y
        self.checked = isinstance(energy, ClassEnergy)
        if isinstance(energy, ClassEnergy):
            rows = y.shape[0] if isinstance(y, torch.Tensor) else 0
            self.y = check_labels("y", y, rows, energy.n_classes)
        self.rows_independent = bool(getattr(energy, "rows_independent", False))
        if hasattr(energy, "event_shape"):
            self.event_shape = energy.event_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"ConditionedEnergy holds {self.y.shape[0]} labels, got a batch of {x.shape[0]} rows"
            )
        score = self.energy.checked_class_energy if self.checked else self.energy.class_energy
        out: torch.Tensor = score(x, self.y.to(x.device))
        return out
