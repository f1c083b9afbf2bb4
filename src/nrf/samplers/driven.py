"""Temperature driven sampling (TDS) of an RBM (BEAM, Algorithms 1 and 2).

Each chain i carries an inverse temperature beta_i and samples exp(-beta_i E(v, h)). Before
every block Gibbs sweep (:mod:`nrf.samplers.gibbs`, conditionals at beta_i), beta_i takes
one step of an autoregressive Gamma process (Algorithm 1, Gourieroux & Jasiak 2006):

    nu = 1 / Var,   c = (1 - phi) Var,
    z ~ Poisson(beta phi / c),
    beta' ~ Gamma(shape nu + z, scale c).

Its stationary law is Gamma(shape 1 / Var, scale Var) (mean 1, variance Var) and
E[beta' | beta] = (1 - phi) + phi beta, so the lag-1 autocorrelation is phi. The chains
start from the stationary law (Algorithm 2). Cold chains (beta > 1) stay near the model,
hot ones (beta < 1) cross between its modes; the collection samples a distribution close
to the model's with fatter tails, not the model exactly. ``beta_std`` = 0 is plain block
Gibbs (the same draws from the same generator).

Gamma variates are drawn here by Marsaglia & Tsang's method on the step's generator
(torch's own Gamma samplers take no generator).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nrf.samplers.base import SAMPLERS, advance
from nrf.samplers.gibbs import (
    BlockGibbs,
    GibbsInfo,
    GibbsState,
    check_gibbs_state,
    gibbs_sweep,
    rbm_of,
)
from nrf.targets.base import Target


def sample_gamma(
    shape: torch.Tensor, scale: torch.Tensor | float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One Gamma(shape, scale) draw per element of ``shape`` (density
    x^(k-1) exp(-x / scale) / (Gamma(k) scale^k)), by Marsaglia & Tsang (2000).

    For k >= 1, with d = k - 1/3 and c = 1 / sqrt(9 d): draw x ~ N(0, 1), u ~ U(0, 1) and
    v = (1 + c x)^3 until v > 0 and log u < x^2 / 2 + d - d v + d log v; return d v (at
    least 95% of the proposals are accepted: four are drawn per element at once and the
    first accepted one is kept; elements with none accepted are redrawn).
    For k < 1, a Gamma(k + 1) draw times u^(1/k) (u ~ U(0, 1]) is Gamma(k).
    Pure: all the noise comes from ``generator``.
    """
    if not isinstance(shape, torch.Tensor) or not shape.is_floating_point():
        raise TypeError(f"shape must be a floating-point tensor, got {shape!r}")
    if not bool(torch.isfinite(shape).all()) or bool((shape <= 0).any()):
        raise ValueError(f"shape must hold finite numbers > 0, got min {float(shape.min())}")
    if isinstance(scale, torch.Tensor):
        if not bool(torch.isfinite(scale).all()) or bool((scale <= 0).any()):
            raise ValueError("scale must hold finite numbers > 0")
    elif isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    return _gamma(shape, scale, generator)


_PROPOSALS = 4  # Marsaglia-Tsang proposals drawn per element at once (each accepted >= 95 %)


def _gamma(
    shape: torch.Tensor, scale: torch.Tensor | float, generator: torch.Generator | None
) -> torch.Tensor:
    """:func:`sample_gamma` without the argument checks (for callers that checked them):
    ``_PROPOSALS`` proposals per element in one pass, the first accepted one kept; the
    elements with none accepted (fewer than 1 in 10^5) are redrawn in a loop."""
    kw: dict[str, Any] = {"dtype": shape.dtype, "device": shape.device, "generator": generator}
    k = shape.reshape(-1)
    boost = k < 1
    d = (torch.where(boost, k + 1, k) - 1.0 / 3.0)[:, None]
    c = torch.rsqrt(9.0 * d)
    value, ok = _proposals(
        d, c, torch.randn(k.numel(), _PROPOSALS, **kw), torch.rand(k.numel(), _PROPOSALS, **kw)
    )
    first = ok.to(torch.uint8).argmax(1, keepdim=True)  # the first accepted proposal of each element
    out = value.gather(1, first).squeeze(1)
    pending = (~ok.any(1)).nonzero().squeeze(1)
    while pending.numel():
        n = pending.numel()
        value, accept = _proposals(d[pending, 0], c[pending, 0], torch.randn(n, **kw), torch.rand(n, **kw))
        out[pending[accept]] = value[accept]
        pending = pending[~accept]
    if bool(boost.any()):
        idx = boost.nonzero().squeeze(1)
        w = 1.0 - torch.rand(idx.numel(), **kw)  # in (0, 1]
        out[idx] = out[idx] * w.pow(1.0 / k[idx])
    return out.reshape(shape.shape) * scale


def _proposals(
    d: torch.Tensor, c: torch.Tensor, x: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Marsaglia-Tsang proposals d v, v = (1 + c x)^3, and whether each is accepted
    (v > 0 and log u < x^2 / 2 + d - d v + d log v)."""
    v = (1.0 + c * x).pow(3)
    positive = v > 0
    accept = positive & (u.log() < 0.5 * x * x + d - d * v + d * torch.where(positive, v, 1.0).log())
    return d * v, accept


def _check_process(phi: float, variance: float) -> tuple[float, float]:
    if isinstance(phi, bool) or not isinstance(phi, numbers.Real) or not 0.0 <= phi < 1.0:
        raise ValueError(f"phi (the autocorrelation) must be in [0, 1), got {phi!r}")
    if isinstance(variance, bool) or not isinstance(variance, numbers.Real) or not 0 <= variance < math.inf:
        raise ValueError(f"variance must be a finite number >= 0, got {variance!r}")
    return float(phi), float(variance)


def stationary_gamma(
    n: int,
    variance: float,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` draws of the process's stationary law Gamma(shape 1 / Var, scale Var) (mean
    1, variance Var); ones for Var = 0."""
    _, variance = _check_process(0.0, variance)
    if variance == 0:
        return torch.ones(n, dtype=dtype, device=device)
    return sample_gamma(torch.full((n,), 1.0 / variance, dtype=dtype, device=device), variance, generator)


def autoregressive_gamma_step(
    beta: torch.Tensor, phi: float, variance: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One step of the autoregressive Gamma process (BEAM Algorithm 1), per element:

        nu = 1 / Var,  c = (1 - phi) Var,  z ~ Poisson(beta phi / c),  beta' ~ Gamma(nu + z, scale c).

    Stationary law Gamma(1 / Var, scale Var), lag-1 autocorrelation ``phi`` (0 <= phi < 1);
    Var = 0 returns ones and draws nothing. Pure: the noise comes from ``generator``.

    >>> beta = torch.ones(4)
    >>> autoregressive_gamma_step(beta, 0.9, 0.81, torch.Generator().manual_seed(0)).shape
    torch.Size([4])
    """
    phi, variance = _check_process(phi, variance)
    if not isinstance(beta, torch.Tensor) or not beta.is_floating_point():
        raise TypeError(f"beta must be a floating-point tensor, got {beta!r}")
    if not bool(torch.isfinite(beta).all()) or bool((beta < 0).any()):
        raise ValueError("beta must hold finite numbers >= 0")
    if variance == 0:
        return torch.ones_like(beta)
    c = (1.0 - phi) * variance
    z = torch.poisson(beta * (phi / c), generator=generator) if phi > 0 else torch.zeros_like(beta)
    return _gamma(z + 1.0 / variance, c, generator)


@dataclass
class DrivenGibbsState(GibbsState):
    """TDS chains: a :class:`~nrf.samplers.gibbs.GibbsState` plus each chain's inverse
    temperature ``beta = (beta_i,)``, shape ``(batch,)`` (``None`` until the first step
    draws it from the stationary law), saved by :meth:`state_dict`."""

    beta: tuple[torch.Tensor, ...] | None = None

    @property
    def inverse_temperature(self) -> torch.Tensor | None:
        """beta_i, shape ``(batch,)`` (``None`` before the first step)."""
        return None if self.beta is None else self.beta[0]


@dataclass(frozen=True)
class DrivenGibbsInfo(GibbsInfo):
    """A TDS transition: the inverse temperatures the sweep used, shape ``(batch,)``."""

    beta: torch.Tensor | None = None


@SAMPLERS.register("driven-gibbs", aliases=("tds",))
class TemperatureDrivenGibbs(BlockGibbs):
    """Temperature driven sampling (BEAM Algorithm 2) of an :class:`~nrf.targets.RBMTarget`.

    Parameters
    ----------
    beta_std:
        Standard deviation sqrt(Var) of the inverse temperatures, 0 <= beta_std < 1
        (BEAM uses about 0.9); 0 gives plain block Gibbs.
    autocorrelation:
        Lag-1 autocorrelation phi of each chain's beta, 0 <= phi < 1 (BEAM: 0.9).
    mean_field_visible:
        As for :class:`~nrf.samplers.gibbs.BlockGibbs` (E[v | h] at the chain's beta).

    >>> from nrf.energies import RBM
    >>> from nrf.targets import RBMTarget
    >>> target = RBMTarget(RBM(6, 3, generator=torch.Generator().manual_seed(0)))
    >>> sampler = TemperatureDrivenGibbs(beta_std=0.9, autocorrelation=0.9)
    >>> state, info = sampler.step(target, sampler.init(torch.zeros(5, 6)), torch.Generator().manual_seed(1))
    >>> state.inverse_temperature.shape
    torch.Size([5])
    """

    state_type = DrivenGibbsState

    def __init__(
        self, beta_std: float = 0.9, autocorrelation: float = 0.9, *, mean_field_visible: bool = False
    ) -> None:
        super().__init__(mean_field_visible=mean_field_visible)
        if isinstance(beta_std, bool) or not isinstance(beta_std, numbers.Real) or not 0 <= beta_std < 1:
            raise ValueError(f"beta_std must be in [0, 1), got {beta_std!r}")
        if (
            isinstance(autocorrelation, bool)
            or not isinstance(autocorrelation, numbers.Real)
            or not 0 <= autocorrelation < 1
        ):
            raise ValueError(f"autocorrelation must be in [0, 1), got {autocorrelation!r}")
        self.beta_std: float = float(beta_std)
        self.autocorrelation: float = float(autocorrelation)

    @property
    def variance(self) -> float:
        """Var[beta] = beta_std^2."""
        return self.beta_std**2

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "beta_std": self.beta_std,
            "autocorrelation": self.autocorrelation,
            "mean_field_visible": self.mean_field_visible,
        }

    def init(self, z: torch.Tensor | Sequence[torch.Tensor]) -> DrivenGibbsState:
        state = super().init(z)
        assert isinstance(state, DrivenGibbsState)
        return state

    def step(  # type: ignore[override]
        self, target: Target, state: DrivenGibbsState, generator: torch.Generator | None = None
    ) -> tuple[DrivenGibbsState, DrivenGibbsInfo]:
        name = type(self).__name__
        rbm = rbm_of(target, name)
        check_gibbs_state(state, DrivenGibbsState, name)
        v = state.x
        if state.beta is None:
            beta = stationary_gamma(v.shape[0], self.variance, generator, dtype=v.dtype, device=v.device)
        else:
            beta = state.beta[0]
            if beta.shape != (v.shape[0],):
                raise ValueError(f"state.beta has shape {tuple(beta.shape)} for {v.shape[0]} chains")
        beta = autoregressive_gamma_step(beta, self.autocorrelation, self.variance, generator)
        v_new, h, mean = gibbs_sweep(rbm, v, beta, generator, mean_field_visible=self.mean_field_visible)
        new = advance(
            state,
            position=(v_new,),
            hidden=(h,),
            beta=(beta,),
            visible_mean=None if mean is None else (mean,),
        )
        return new, DrivenGibbsInfo(visible_mean=mean, beta=beta)
