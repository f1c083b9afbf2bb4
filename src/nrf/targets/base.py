"""The target contract: what a sampler follows.

A target is a (possibly unnormalized, possibly only stochastically known) log-density
over a *position*, a tuple of tensors that share the batch (chain) dimension, e.g.
``(x,)`` or ``(x, h)``. Samplers call :meth:`Target.grad` for the drift and, when they
need Metropolis-Hastings, :meth:`Target.log_prob`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from nrf.nn import frozen_weights

Position = tuple[torch.Tensor, ...]


class Target(ABC):
    """Base class of every target.

    Subclasses implement :meth:`log_prob`; the default :meth:`grad` differentiates it with
    autograd. Targets whose gradient is stochastic (the augmented target of Inclusive-NRF)
    override :meth:`grad` and set ``exact = False``, which rules out MH corrections.
    """

    #: whether :meth:`grad` is the exact gradient of :meth:`log_prob`.
    exact: bool = True

    @abstractmethod
    def log_prob(self, position: Position) -> torch.Tensor:
        """Log-density up to a constant, shape ``(batch,)``."""

    def log_prob_and_grad(
        self, position: Position, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Position]:
        """Log-density (detached) and its gradient with respect to every position tensor.

        ``generator`` is the source of randomness of a stochastic gradient; exact targets
        ignore it.
        """
        with torch.enable_grad(), frozen_weights():
            leaves = tuple(p.detach().requires_grad_(True) for p in position)
            value = self.log_prob(leaves)
            grads = torch.autograd.grad(value.sum(), leaves)
        return value.detach(), tuple(g.detach() for g in grads)

    def grad(self, position: Position, *, generator: torch.Generator | None = None) -> Position:
        """Gradient of the log-density with respect to every position tensor."""
        return self.log_prob_and_grad(position, generator=generator)[1]

    def moves(self, position: Position) -> tuple[bool, ...]:
        """Which position tensors a sampler updates (all by default).

        A frozen tensor keeps its value: no drift, no noise, no momentum.
        """
        return (True,) * len(position)

    def project(self, position: Position) -> Position:
        """Map a proposed position onto the target's support (identity by default).

        Masked targets use it to put the observed coordinates back.
        """
        return position
