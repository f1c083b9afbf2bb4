"""Annealed importance sampling (AIS) of an RBM's log partition function
(Salakhutdinov & Murray 2008, "On the quantitative analysis of deep belief networks").

The base model A has no weights (W = 0): independent visible units with energy E_A(v),

    Bernoulli:  E_A(v) = -a_A^T v,                     log Z_A = sum_i softplus(a_A,i),
    Gaussian:   E_A(v) = sum_i (v_i - m_i)^2 / (2 s_i^2),  log Z_A = sum_i log(2 pi s_i^2) / 2.

``base = "data"`` fits it to ``data``: Bernoulli logits a_A = logit(p_i) of the smoothed
base rates p_i = (sum_n v_ni + 1) / (N + 2); Gaussian m, s^2 the rows' mean and variance
(floored at 1e-6). ``base = "uniform"``: Bernoulli a_A = 0 (the uniform distribution on
{0, 1}^d); Gaussian m = a, s^2 = sigma^2, the RBM's own visible biases and variances (its
W = 0 model; a Gaussian has no uniform base).

The intermediate distributions over (v, h), for 0 = beta_0 <= ... <= beta_K = 1, are

    p_k(v, h) ~ exp(-(1 - beta_k) E_A(v) - beta_k E_B(v, h))

with E_B the RBM's joint energy (centering offsets included, see :mod:`nrf.energies.rbm`).
Summing h out, with c(v) = b + W^T u(v) the hidden input and V(v) the RBM's visible term,

    log p*_k(v) = -(1 - beta_k) E_A(v) - beta_k (V(v) + lambda^T c(v)) + sum_j softplus(beta_k c_j(v)),

so p*_K = exp(-F(v)) and p*_0 = exp(-E_A(v)) 2^n_hidden (Z_0 = Z_A 2^n_hidden). Each chain
starts from v_1 ~ p_A and moves by one Gibbs sweep leaving p_k invariant:

    h_j | v ~ Bernoulli(sigmoid(beta_k c_j(v))),
    Bernoulli v:  v_i | h ~ Bernoulli(sigmoid((1 - beta_k) a_A,i + beta_k x_i)),
    Gaussian v:   v_i | h ~ N(mean_i, 1 / tau_i),  tau_i = (1 - beta_k) / s_i^2 + beta_k / sigma_i^2,
                  mean_i = ((1 - beta_k) m_i / s_i^2 + beta_k x_i / sigma_i^2) / tau_i,

with x = a + W (h - lambda) the RBM's visible input. A chain's importance log-weight is

    log w = sum_{k=1..K} [log p*_k(v_k) - log p*_{k-1}(v_k)],   v_{k+1} ~ T_k(v_k),

and Z_B / Z_0 is estimated by the mean of the weights: log Z_hat = log mean_i w_i + log Z_A
+ n_hidden log 2. The error bar is S&M's: with sd_hat the standard error of Z_hat
(the weights' sd over sqrt(n_chains)), the delta method gives sd(log Z_hat) = sd_hat / Z_hat,
and the interval log(Z_hat -+ 3 sd_hat). It measures the spread of the weights only: too
few betas give an estimate biased low (log Z_hat underestimates log Z on average) whose
weights can still look consistent, so compare ladders when in doubt. The effective sample
size is (sum w)^2 / sum w^2.

All arithmetic is done in float64 on a copy of the RBM, on its device.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nrf._checks import check_choice, check_positive_int
from nrf.energies.rbm import RBM, bernoulli

BASES = ("uniform", "data")
DEFAULT_BETAS = 10_000


@dataclass(frozen=True)
class AISResult:
    """An AIS estimate of log Z and what it rests on.

    ``log_z_sd`` is the delta-method standard deviation of ``log_z``; ``log_z_low`` /
    ``log_z_high`` are log(Z_hat -+ 3 sd_hat) (``-inf`` when Z_hat <= 3 sd_hat);
    ``log_weights`` the chains' importance log-weights (float64, CPU), relative to the
    base's normalizer ``log_z_base`` = log Z_A + n_hidden log 2; ``ess`` the effective
    number of chains.
    """

    log_z: float
    log_z_sd: float
    log_z_low: float
    log_z_high: float
    log_weights: torch.Tensor
    ess: float
    log_z_base: float
    n_chains: int
    n_betas: int


@dataclass(frozen=True)
class _Base:
    """The W = 0 base model: Bernoulli logits ``bias`` (``var`` None) or Gaussian mean
    ``bias`` and variances ``var``."""

    bias: torch.Tensor
    var: torch.Tensor | None
    log_z: float

    def energy(self, v: torch.Tensor) -> torch.Tensor:
        if self.var is None:
            return -(v @ self.bias)
        return ((v - self.bias).pow(2) / (2 * self.var)).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        shape = (n, self.bias.shape[0])
        if self.var is None:
            return bernoulli(torch.sigmoid(self.bias).expand(shape), generator)
        noise = torch.randn(shape, generator=generator, dtype=self.bias.dtype, device=self.bias.device)
        return self.bias + noise * self.var.sqrt()


def ais_log_partition(
    rbm: RBM,
    n_chains: int = 100,
    n_betas: int | None = None,
    *,
    betas: torch.Tensor | Sequence[float] | None = None,
    base: str = "uniform",
    data: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Estimate log Z of ``rbm`` with ``n_chains`` AIS chains (see the module docstring).

    The ladder is ``n_betas`` (default 10,000) evenly spaced inverse temperatures from 0 to
    1, or ``betas`` itself (non-decreasing, from 0 to 1; e.g. S&M's 0 -> 0.5 -> 0.9 -> 1 in
    steps of 1e-3, 1e-4, 1e-4). ``base`` chooses the base model ("data" needs ``data``,
    rows of the training set); ``generator`` drives every draw.

    >>> rbm = RBM(6, 4, weight_std=1.0, generator=torch.Generator().manual_seed(0))
    >>> est = ais_log_partition(rbm, 200, 500, generator=torch.Generator().manual_seed(1))
    >>> abs(est.log_z - rbm.log_partition().item()) < 3 * est.log_z_sd
    True
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an nrf.energies.RBM, got {type(rbm).__name__}")
    n_chains = check_positive_int("n_chains", n_chains)
    if n_chains < 2:
        raise ValueError(f"n_chains must be >= 2 (the error bar needs a spread), got {n_chains}")
    check_choice("base", base, BASES)
    model = copy.deepcopy(rbm).to(torch.float64)
    device = model.weight.device
    ladder = _ladder(n_betas, betas, device)
    start = _base(model, base, data)
    with torch.no_grad():
        log_w = torch.zeros(n_chains, dtype=torch.float64, device=device)
        v = start.sample(n_chains, generator)
        c = model.hidden_input(v)
        for k in range(1, ladder.shape[0]):
            b0, b1 = float(ladder[k - 1]), float(ladder[k])
            log_w += _log_p_star(model, start, v, c, b1) - _log_p_star(model, start, v, c, b0)
            if k < ladder.shape[0] - 1:
                v = _gibbs(model, start, c, b1, generator)
                c = model.hidden_input(v)
    return _result(log_w.cpu(), start.log_z + model.n_hidden * math.log(2.0), ladder.shape[0])


def rbm_log_likelihood(rbm: RBM, v: torch.Tensor, log_z: float | torch.Tensor | AISResult) -> float:
    """Mean log-likelihood of the rows ``v`` under ``rbm``: mean_n(-F(v_n)) - log Z, with
    ``log_z`` a number (exact :meth:`RBM.log_partition` or an AIS estimate) or an
    :class:`AISResult`. For Gaussian visible units it is a log density."""
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an nrf.energies.RBM, got {type(rbm).__name__}")
    value = log_z.log_z if isinstance(log_z, AISResult) else float(log_z)
    if not math.isfinite(value):
        raise ValueError(f"log_z must be finite, got {value}")
    if not isinstance(v, torch.Tensor) or v.dim() < 1 or v.reshape(v.shape[0], -1).shape[1] != rbm.n_visible:
        shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
        raise ValueError(f"v must have shape (batch, {rbm.n_visible}), got {shape}")
    if v.shape[0] == 0:
        raise ValueError("v must hold at least one row, got 0")
    with torch.no_grad():
        free = rbm(v.reshape(v.shape[0], -1).to(rbm.weight))
    return float(-free.double().mean()) - value


def _ladder(
    n_betas: int | None, betas: torch.Tensor | Sequence[float] | None, device: torch.device
) -> torch.Tensor:
    if betas is None:
        n = DEFAULT_BETAS if n_betas is None else check_positive_int("n_betas", n_betas)
        if n < 2:
            raise ValueError(f"n_betas must be >= 2 (beta = 0 and beta = 1 at least), got {n}")
        return torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=device)
    if n_betas is not None:
        raise ValueError(f"give either n_betas or betas, got n_betas = {n_betas} and a ladder of betas")
    ladder = torch.as_tensor(betas, dtype=torch.float64).to(device)
    if ladder.dim() != 1 or ladder.shape[0] < 2:
        raise ValueError(f"betas must be a 1-D ladder of at least 2 values, got shape {tuple(ladder.shape)}")
    if float(ladder[0]) != 0.0 or float(ladder[-1]) != 1.0:
        raise ValueError(f"betas must run from 0 to 1, got {float(ladder[0])} ... {float(ladder[-1])}")
    bad = ~(ladder.diff() >= 0)  # a decrease, or NaN / inf inside the ladder
    if bool(bad.any()):
        first = int(torch.nonzero(bad)[0])
        raise ValueError(
            f"betas must be finite and non-decreasing, got {float(ladder[first])} then "
            f"{float(ladder[first + 1])} at index {first}"
        )
    return ladder


def _base(model: RBM, base: str, data: torch.Tensor | None) -> _Base:
    """The W = 0 base model of ``model`` (float64) for ``base``."""
    if base == "uniform":
        if data is not None:
            raise ValueError("data is only used with base = 'data', got data with base = 'uniform'")
        if model.gaussian:
            var = model.variance.detach().clone()
            return _Base(model.visible_bias.detach().clone(), var, _gaussian_log_z(var))
        zeros = torch.zeros(model.n_visible, dtype=torch.float64, device=model.weight.device)
        return _Base(zeros, None, model.n_visible * math.log(2.0))
    if data is None:
        raise ValueError("base = 'data' needs data (training rows of shape (N, n_visible)), got None")
    if not isinstance(data, torch.Tensor) or data.dim() < 1 or data.shape[0] == 0:
        raise ValueError(f"data must be a non-empty tensor of rows, got {type(data).__name__}")
    x = data.detach().reshape(data.shape[0], -1).to(model.weight)
    if x.shape[1] != model.n_visible:
        raise ValueError(
            f"data must have {model.n_visible} values per row (n_visible), got shape {tuple(data.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"data holds {int((~torch.isfinite(x)).sum())} non-finite values")
    if model.gaussian:
        var = x.var(0, unbiased=False).clamp_min(1e-6)
        return _Base(x.mean(0), var, _gaussian_log_z(var))
    if bool(((x < 0) | (x > 1)).any()):
        raise ValueError(
            f"data for a Bernoulli RBM must lie in [0, 1], got values in [{float(x.min())}, {float(x.max())}]"
        )
    rate = (x.sum(0) + 1.0) / (x.shape[0] + 2.0)
    logits = rate.log() - (-rate).log1p()
    return _Base(logits, None, float(F.softplus(logits).sum()))


def _gaussian_log_z(var: torch.Tensor) -> float:
    return float(0.5 * (math.log(2 * math.pi) + var.log()).sum())


def _log_p_star(model: RBM, base: _Base, v: torch.Tensor, c: torch.Tensor, beta: float) -> torch.Tensor:
    """log p*_beta(v), with h summed out; ``c`` = c(v)."""
    rbm_part = model.visible_term(v) + c @ model.hidden_offset
    return -(1.0 - beta) * base.energy(v) - beta * rbm_part + F.softplus(beta * c).sum(-1)


def _gibbs(
    model: RBM, base: _Base, c: torch.Tensor, beta: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One sweep h ~ p_beta(h | v), v ~ p_beta(v | h), from c = c(v)."""
    h = bernoulli(torch.sigmoid(beta * c), generator)
    x = model.visible_input(h)
    if base.var is None:
        return bernoulli(torch.sigmoid((1.0 - beta) * base.bias + beta * x), generator)
    precision = (1.0 - beta) / base.var + beta / model.variance
    mean = ((1.0 - beta) * base.bias / base.var + beta * x / model.variance) / precision
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + noise * precision.rsqrt()


def _result(log_w: torch.Tensor, log_z_base: float, n_betas: int) -> AISResult:
    n = log_w.shape[0]
    if not bool(torch.isfinite(log_w).all()):
        raise ValueError(f"AIS gave {int((~torch.isfinite(log_w)).sum())} non-finite log-weights")
    top = float(log_w.max())
    r = (log_w - top).exp()  # w / max w
    mean = float(r.mean())
    rel = float(r.std()) / (math.sqrt(n) * mean)  # sd_hat / Z_hat
    log_z = top + math.log(mean) + log_z_base
    ess = float(r.sum() ** 2 / r.pow(2).sum())
    low = log_z + math.log1p(-3 * rel) if 3 * rel < 1 else -math.inf
    return AISResult(log_z, rel, low, log_z + math.log1p(3 * rel), log_w, ess, log_z_base, n, n_betas)
