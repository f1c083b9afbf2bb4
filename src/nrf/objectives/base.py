"""The objective contract the trainer drives.

An objective is an ``nn.Module`` holding the networks it trains. Per batch the trainer
calls :meth:`Objective.training_step` with a :class:`StepContext`; the objective computes
its losses and calls ``ctx.update(group, loss)`` once per optimizer group, in the order
its method requires (e.g. the potential first, then the generator). The context owns the
optimizers, gradient clipping, multi-process gradient averaging and the non-finite
checks, so objectives contain only the method's mathematics. Losses are means over the
batch's rows; with an ensemble network (several members trained as one, see
:mod:`nrf.nn.ensemble`) the loop turns them into the sum of the members' means, so an
objective never knows how many members it trains.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

import torch
from torch import nn

from nrf.data.batch import Batch
from nrf.nn import evaluation_mode
from nrf.registry import Configurable, Registry, plain


class StepContext(Protocol):
    """What an objective may use during a training step."""

    generator: torch.Generator
    step: int

    def update(self, group: str, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and step the optimizer of parameter group ``group``."""
        ...


OBJECTIVES: Registry[Objective] = Registry("objective")
"""Every learning method by name (``[objective]`` of configs, the detector's ``method``);
networks and the sampler are given as context, the method's own options by the spec."""


class Objective(nn.Module, Configurable, ABC):
    """Base class of every learning method.

    Subclasses set ``self.energy`` (the model whose energy is the density) and implement
    :meth:`optimizer_groups`, :meth:`training_step` and :meth:`sample`; registered ones
    keep each constructor option under its own name, so :meth:`to_config` can read it.
    """

    energy: nn.Module

    def config_args(self) -> dict[str, Any]:
        """The method's options (constructor arguments other than networks and sampler)."""
        assert self.registry is not None
        return {k: plain(getattr(self, k)) for k in self.registry.entry(self.config_name).parameters()}

    @abstractmethod
    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups by name; the config gives each group its optimizer."""

    @abstractmethod
    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One update on ``batch`` (rows ``batch.x``, labels ``batch.y`` when the data has
        them); returns named metrics (floats) for logging."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples from the model (the method's own sampling procedure)."""

    def initialize(self, data: torch.Tensor) -> None:
        """Data-dependent initialization before training: by default, the weight-normalized
        layers of the energy are initialized on ``data``."""
        from nrf.nn import data_dependent_init, weight_norm_layers

        if any(True for _ in weight_norm_layers(self.energy)):
            data_dependent_init(self.energy, data)

    def initialize_batch(self, batch: Batch) -> None:
        """Data-dependent initialization from training rows with their labels (what the
        loop calls): by default :meth:`initialize` on the rows; methods whose networks need
        the labels too (e.g. the contexts of transition models) override it."""
        self.initialize(batch.x)

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Energies of ``x`` in evaluation mode (higher = less probable), one per row; an
        ensemble network reads its rows per member (see :mod:`nrf.training.ensemble` to
        score rows under each member)."""
        with evaluation_mode(self):
            out: torch.Tensor = self.energy(x)
        return out

    def validation_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> float | None:
        """The objective's loss on held-out rows ``x`` without updating anything (its noise
        from ``generator``), for model selection; ``None`` for methods whose loss needs
        the model's own samples (contrastive divergence, inclusive-NRF)."""
        return None

    def event_dims(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(getattr(self.energy, "event_shape", ()))

    def extra_state(self) -> dict[str, Any]:
        """State outside the parameters and buffers (e.g. a replay buffer): tensors and
        JSON-able scalars, restored by :meth:`load_extra_state`."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""


Objective.registry = OBJECTIVES


def paired_energies(energy: nn.Module, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(energy(a), energy(b))``; one call on the rows of both when the energy says its rows
    are independent (``rows_independent``) and the batches have one shape per row (one
    larger matrix product instead of two smaller ones, half the element-wise calls)."""
    if getattr(energy, "rows_independent", False) and a.shape[1:] == b.shape[1:] and a.dtype == b.dtype:
        both: torch.Tensor = energy(torch.cat([a, b]))
        return both[: a.shape[0]], both[a.shape[0] :]
    return energy(a), energy(b)
