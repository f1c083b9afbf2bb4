"""Shared pieces of the objectives that pair an energy (or critic) with a generator."""

from __future__ import annotations

import torch
from torch import nn

from nrf.generators import LatentGenerator
from nrf.nn import data_dependent_init, weight_norm_layers
from nrf.objectives.base import Objective


class GeneratorObjective(Objective):
    """An energy / discriminator network plus a latent generator; samples come from the
    generator. Subclasses implement :meth:`training_step`."""

    def __init__(self, energy: nn.Module, generator: LatentGenerator) -> None:
        super().__init__()
        self.energy = energy
        self.generator = generator

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "energy": [p for p in self.energy.parameters() if p.requires_grad],
            "generator": [p for p in self.generator.parameters() if p.requires_grad],
        }

    def initialize(self, data: torch.Tensor) -> None:
        super().initialize(data)
        if any(True for _ in weight_norm_layers(self.generator)):
            gen = torch.Generator(device=data.device).manual_seed(0)
            h = torch.randn(data.shape[0], self.generator.latent_dim, generator=gen, device=data.device)
            data_dependent_init(self.generator, h)

    def fake(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Generator samples with gradients to the generator (batch statistics in batch norm)."""
        self.generator.train()
        x, _ = self.generator.sample(n, generator)
        return x

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.fake(n, generator)
