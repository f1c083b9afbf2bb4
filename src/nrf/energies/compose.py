"""Energies made of energies: weighted sums (products of experts) and tempering.

    SumEnergy:       E(x) = sum_i w_i E_i(x)     (p ∝ prod_i p_i^{w_i}, IGEBM's composition)
    TemperedEnergy:  E(x) = E_0(x) / T           (p ∝ p_0^{1/T}; T > 1 flattens, T < 1 sharpens)

Both are ordinary energies: every target, sampler, metric and the detector take them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_positive


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
        if hasattr(energy, "event_shape"):
            self.event_shape = energy.event_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.energy(x)
        return out if self.temperature == 1.0 else out / self.temperature
