"""Boltzmann densities of energies: p(x) ∝ exp(-E(x) / T)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_positive
from nrf.energies.compose import SumEnergy
from nrf.targets.base import Position, Target


class BoltzmannTarget(Target):
    """The density p(x) ∝ exp(-E(x) / T) of an energy (any module mapping x to ``(batch,)``).

    ``temperature`` T = 1 gives the model itself; T > 1 flattens it (tempering), T < 1
    sharpens it.

    >>> from nrf.energies import GaussianEnergy
    >>> target = BoltzmannTarget(GaussianEnergy(torch.zeros(2), torch.eye(2)))
    >>> target.grad((torch.ones(3, 2),))[0]
    tensor([[-1., -1.],
            [-1., -1.],
            [-1., -1.]])
    """

    def __init__(self, energy: nn.Module, temperature: float = 1.0) -> None:
        self.energy = energy
        self.temperature = check_positive("temperature", temperature)

    def log_prob(self, position: Position) -> torch.Tensor:
        e: torch.Tensor = self.energy(position[0])
        return -e if self.temperature == 1.0 else -e / self.temperature


def tempered(target: BoltzmannTarget, temperature: float) -> BoltzmannTarget:
    """A copy of ``target`` at another temperature (same energy module)."""
    return BoltzmannTarget(target.energy, temperature)


class ProductOfExperts(BoltzmannTarget):
    """Sum of energies (product of experts): log p(x) = -sum_i w_i E_i(x) + const, the
    Boltzmann density of :class:`~nrf.energies.SumEnergy`.

    Used for compositional generation (IGEBM): each expert is an energy over the same x.
    """

    def __init__(self, energies: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__(SumEnergy(energies, weights))
