"""Block Gibbs sampling of a restricted Boltzmann machine.

The layers of an RBM are conditionally independent given each other, so one transition
updates each layer as a block (BEAM Eq. 1; :mod:`nrf.energies.rbm`):

    h' ~ p(h | v)   (p(h_mu = 1 | v) = sigmoid(beta c_mu(v))),
    v' ~ p(v | h')  (Bernoulli: sigmoid(beta (a + W (h' - lambda))); Gaussian:
                     N(a + W (h' - lambda), sigma^2 / beta)),

at inverse temperature beta (1 for the model itself; one value per chain for
:class:`~nrf.samplers.driven.TemperatureDrivenGibbs`). The transition leaves
p(v) ∝ exp(-beta F(v)) invariant; k steps of CD-k / PCD are k calls. The state keeps the
last hidden sample h' (a persistent chain restored from a checkpoint has it back), and
with ``mean_field_visible`` also E[v | h'], the usual noise-free display of fantasy
particles (the chain itself always moves to the sample v').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nrf._checks import check_bool
from nrf.energies.rbm import RBM
from nrf.samplers.base import SAMPLERS, ChainState, Sampler, StepInfo, advance, as_position
from nrf.targets.base import Target
from nrf.targets.rbm import RBMTarget

_CACHE: dict[str, Any] = {"persistent": False}


def gibbs_sweep(
    rbm: RBM,
    v: torch.Tensor,
    beta: torch.Tensor | float = 1.0,
    generator: torch.Generator | None = None,
    *,
    mean_field_visible: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """h ~ p(h | v), then v' ~ p(v | h), at inverse temperature ``beta`` (a number or one
    per row); returns ``(v', h, E[v | h] or None)`` (pure: the noise comes from
    ``generator``; computing the mean draws nothing, so it does not change the chain)."""
    with torch.no_grad():
        h = rbm.sample_hidden(v, beta, generator)
        mean = rbm.visible_mean(h, beta) if mean_field_visible else None
        v_new = rbm.sample_visible(h, beta, generator)
    return v_new, h, mean


@dataclass
class GibbsState(ChainState):
    """Gibbs chains over ``(v,)``: the visible sample, and the hidden sample drawn in the
    last transition (``hidden = (h,)``; ``None`` before the first one), saved by
    :meth:`state_dict`. ``visible_mean`` caches E[v | h] when the sampler computes it."""

    hidden: tuple[torch.Tensor, ...] | None = None
    visible_mean: tuple[torch.Tensor, ...] | None = field(default=None, repr=False, metadata=_CACHE)

    @property
    def h(self) -> torch.Tensor | None:
        """The last hidden sample, ``(batch, n_hidden)`` (``None`` before the first step)."""
        return None if self.hidden is None else self.hidden[0]


@dataclass(frozen=True)
class GibbsInfo(StepInfo):
    """A Gibbs transition: E[v | h] of the new hidden sample when ``mean_field_visible``."""

    visible_mean: torch.Tensor | None = None


def rbm_of(target: Target, sampler: str) -> RBM:
    """The RBM behind ``target``; a TypeError naming ``sampler`` for any other target."""
    if not isinstance(target, RBMTarget):
        raise TypeError(
            f"{sampler} samples the conditionals of an RBM: the target must be an "
            f"nrf.targets.RBMTarget, got {type(target).__name__}"
        )
    return target.rbm


def check_gibbs_state(state: Any, cls: type[GibbsState], sampler: str) -> None:
    if not isinstance(state, cls):
        raise ValueError(
            f"{sampler} needs a {cls.__name__} (create it with {sampler}.init), got {type(state).__name__}"
        )
    if len(state.position) != 1:
        raise ValueError(f"{sampler} chains have the position (v,), got {len(state.position)} tensors")


@SAMPLERS.register("gibbs", aliases=("block-gibbs",))
class BlockGibbs(Sampler):
    """Block Gibbs sampling of an :class:`~nrf.targets.RBMTarget`: h ~ p(h | v), v ~ p(v | h).

    Parameters
    ----------
    mean_field_visible:
        Also compute E[v | h] each transition (``state.visible_mean``, ``info.visible_mean``)
        for display; the chain still moves to the sample.

    >>> from nrf.energies import RBM
    >>> from nrf.targets import RBMTarget
    >>> target = RBMTarget(RBM(6, 3, generator=torch.Generator().manual_seed(0)))
    >>> sampler = BlockGibbs()
    >>> state, info = sampler.step(target, sampler.init(torch.zeros(5, 6)), torch.Generator().manual_seed(1))
    >>> state.h.shape
    torch.Size([5, 3])
    """

    state_type: type[GibbsState] = GibbsState

    def __init__(self, *, mean_field_visible: bool = False) -> None:
        self.mean_field_visible = check_bool("mean_field_visible", mean_field_visible)

    def hyperparameters(self) -> dict[str, Any]:
        return {"mean_field_visible": self.mean_field_visible}

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> GibbsState:
        position = as_position(z)
        if len(position) != 1:
            name = type(self).__name__
            raise ValueError(f"{name} chains have the position (v,), got {len(position)} tensors")
        return self.state_type(position=position)

    def step(
        self, target: Target, state: GibbsState, generator: torch.Generator | None = None
    ) -> tuple[GibbsState, GibbsInfo]:
        rbm = rbm_of(target, type(self).__name__)
        check_gibbs_state(state, GibbsState, type(self).__name__)
        v, h, mean = gibbs_sweep(rbm, state.x, 1.0, generator, mean_field_visible=self.mean_field_visible)
        new = advance(state, position=(v,), hidden=(h,), visible_mean=None if mean is None else (mean,))
        return new, GibbsInfo(visible_mean=mean)
