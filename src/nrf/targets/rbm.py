"""The target of a restricted Boltzmann machine: its visible marginal p(v) ∝ exp(-F(v)).

The position is ``(v,)``; the log-density is minus the free energy F (the hidden units
summed out), so gradient samplers (Langevin, HMC on a Gaussian-Bernoulli RBM) run on it as
on any Boltzmann target. Gibbs samplers (:class:`~nrf.samplers.BlockGibbs`,
:class:`~nrf.samplers.TemperatureDrivenGibbs`) use the RBM's conditionals p(h | v) and
p(v | h) instead, through the ``rbm`` attribute.
"""

from __future__ import annotations

import torch
from torch import nn

from nrf.energies.rbm import RBM
from nrf.targets.base import Position, Target


class RBMTarget(Target):
    """p(v) ∝ exp(-F(v)) of an :class:`~nrf.energies.RBM`, over the position ``(v,)``.

    >>> rbm = RBM(4, 3, generator=torch.Generator().manual_seed(0))
    >>> target = RBMTarget(rbm)
    >>> target.log_prob((torch.zeros(2, 4),)).shape
    torch.Size([2])
    """

    rbm: RBM

    def __init__(self, rbm: nn.Module) -> None:
        if not isinstance(rbm, RBM):
            raise TypeError(f"rbm must be an nrf.energies.RBM, got {type(rbm).__name__}")
        self.rbm = rbm

    def log_prob(self, position: Position) -> torch.Tensor:
        """-F(v) for the first position tensor ``v`` of shape ``(batch, n_visible)``."""
        if len(position) != 1:
            raise ValueError(f"an RBMTarget's position is (v,), got {len(position)} tensors")
        return -self.rbm(position[0])
