"""The objective contract the trainer drives.

An objective is an ``nn.Module`` holding the networks it trains. Per batch the trainer
calls :meth:`Objective.training_step` with a :class:`StepContext`; the objective computes
its losses and calls ``ctx.update(group, loss)`` once per optimizer group, in the order
its method requires (e.g. the potential first, then the generator). The context owns the
optimizers, gradient clipping, multi-process gradient averaging and the non-finite
checks, so objectives contain only the method's mathematics.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

import torch
from torch import nn


class StepContext(Protocol):
    """What an objective may use during a training step."""

    generator: torch.Generator
    step: int

    def update(self, group: str, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` and step the optimizer of parameter group ``group``."""
        ...


class Objective(nn.Module, ABC):
    """Base class of every learning method.

    Subclasses set ``self.energy`` (the model whose energy is the density) and implement
    :meth:`optimizer_groups`, :meth:`training_step` and :meth:`sample`.
    """

    energy: nn.Module

    @property
    def n_models(self) -> int:
        """Independent models trained together (batched networks; 1 otherwise). Batches hold
        ``n_models`` blocks of rows, and losses are sums over models of per-model means."""
        return int(getattr(self.energy, "n_models", 1))

    def for_every_model(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` once per model: ``n_models`` copies stacked along the batch dimension, the
        layout batched networks expect (``x`` itself for a single model)."""
        if self.n_models == 1:
            return x
        return x.repeat(self.n_models, *([1] * (x.dim() - 1)))

    @torch.no_grad()
    def score_models(self, x: torch.Tensor) -> torch.Tensor:
        """Energies of ``x`` under every model, shape ``(n_models, batch)`` (evaluation mode)."""
        was_training = self.training
        self.eval()
        try:
            out: torch.Tensor = self.energy(self.for_every_model(x)).view(self.n_models, x.shape[0])
        finally:
            self.train(was_training)
        return out

    @abstractmethod
    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameter groups by name; the config gives each group its optimizer."""

    @abstractmethod
    def training_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """One update on ``batch``; returns named metrics (floats) for logging."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples from the model (the method's own sampling procedure)."""

    def initialize(self, data: torch.Tensor) -> None:
        """Data-dependent initialization before training: by default, the weight-normalized
        layers of the energy are initialized on ``data``."""
        from nrf.nn import data_dependent_init, weight_norm_layers

        if any(True for _ in weight_norm_layers(self.energy)):
            data_dependent_init(self.energy, data)

    def _check_model(self, model: int | None) -> int | None:
        if self.n_models == 1:
            return None
        if model is None or not 0 <= model < self.n_models:
            raise ValueError(f"model: this run trained {self.n_models} models together; choose one in "
                             f"[0, {self.n_models}), got {model!r}")  # fmt: skip
        return model

    @torch.no_grad()
    def score(self, x: torch.Tensor, model: int | None = None) -> torch.Tensor:
        """Energies of ``x`` (higher = less probable), shape ``(batch,)``; with batched
        models, those of model ``model``."""
        index = self._check_model(model)
        return self.score_models(x)[0 if index is None else index]

    def sample_model(
        self, n: int, model: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` samples; with batched models, those of model ``model``."""
        index = self._check_model(model)
        if index is None:
            return self.sample(n, generator)
        return self.sample(n * self.n_models, generator).view(self.n_models, n, *self.event_dims())[index]

    def event_dims(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(getattr(self.energy, "event_shape", ()))

    def extra_state(self) -> dict[str, Any]:
        """State outside the parameters and buffers (e.g. a replay buffer): tensors and
        JSON-able scalars, restored by :meth:`load_extra_state`."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""
