"""Restricted Boltzmann machines: Bernoulli-Bernoulli and Gaussian-Bernoulli (BEAM Eq. 1).

The joint energy of visible units v (``n_visible``) and binary hidden units h
(``n_hidden``), with optional centering offsets mu (visible) and lambda (hidden), is

    E(v, h) = V(v) - b^T (h - lambda) - u(v)^T W (h - lambda),

where for Bernoulli visible units (v in {0, 1})

    V(v) = -a^T (v - mu),          u(v) = v - mu,

and for Gaussian visible units with learned variances sigma_i^2 = exp(log_var_i)

    V(v) = sum_i (v_i - a_i)^2 / (2 sigma_i^2),   u(v) = (v - mu) / sigma^2.

Summing h out gives the free energy, the model's ``energy`` (so every sampler, metric and
the detector work on an RBM as on any energy):

    F(v) = V(v) + lambda^T c(v) - sum_mu softplus(c_mu(v)),    c(v) = b + W^T u(v).

The layers are conditionally independent; at inverse temperature beta (the density
exp(-beta E)) the conditionals are

    p(h_mu = 1 | v) = sigmoid(beta c_mu(v)),
    Bernoulli:  p(v_i = 1 | h) = sigmoid(beta (a + W (h - lambda))_i),
    Gaussian:   v_i | h ~ N((a + W (h - lambda))_i, sigma_i^2 / beta).

Offsets zero (the default) give the plain RBM; :meth:`RBM.set_offsets` moves them
(Montavon & Mueller 2012) and changes a and b so that the distribution stays the same.
:meth:`RBM.log_partition` enumerates the hidden states (exact log Z for up to
``max_hidden`` hidden units), summing the visible units out in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nrf._checks import check_choice, check_positive, check_positive_int
from nrf.energies.base import Energy

VISIBLE = ("bernoulli", "gaussian")


class RBM(Energy):
    """An RBM with binary hidden units; ``forward(v)`` is the free energy F(v).

    Parameters
    ----------
    n_visible, n_hidden:
        Layer sizes.
    visible:
        ``"bernoulli"`` (v in {0, 1}) or ``"gaussian"`` (real v, learned variances).
    weight_std:
        Standard deviation of the initial weights (biases start at 0, variances at 1).
    learn_variance:
        Gaussian visible units: whether log sigma^2 is a trained parameter.
    event_shape:
        The shape of one sample, e.g. ``(1, 28, 28)`` for images (its size must be
        ``n_visible``; default ``(n_visible,)``): inputs may have it or be flat, samples of
        the visible units come back with it.
    generator:
        Random stream of the initial weights.

    >>> rbm = RBM(6, 3, generator=torch.Generator().manual_seed(0))
    >>> v = torch.bernoulli(torch.full((4, 6), 0.5), generator=torch.Generator().manual_seed(1))
    >>> rbm(v).shape
    torch.Size([4])
    """

    log_var: torch.Tensor
    visible_offset: torch.Tensor
    hidden_offset: torch.Tensor
    rows_independent = True

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: str = "bernoulli",
        *,
        weight_std: float = 0.01,
        learn_variance: bool = True,
        event_shape: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_visible = check_positive_int("n_visible", n_visible)
        self.n_hidden = check_positive_int("n_hidden", n_hidden)
        self.visible = check_choice("visible", visible, VISIBLE)
        self.event_shape = (self.n_visible,) if event_shape is None else tuple(int(d) for d in event_shape)
        if math.prod(self.event_shape) != self.n_visible:
            raise ValueError(
                f"event_shape {self.event_shape} holds {math.prod(self.event_shape)} values, n_visible = "
                f"{self.n_visible}"
            )
        std = check_positive("weight_std", weight_std, allow_zero=True)
        self.weight = nn.Parameter(torch.randn(self.n_visible, self.n_hidden, generator=generator) * std)
        self.visible_bias = nn.Parameter(torch.zeros(self.n_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(self.n_hidden))
        log_var = torch.zeros(self.n_visible)
        if self.visible == "gaussian" and learn_variance:
            self.log_var = nn.Parameter(log_var)
        else:
            self.register_buffer("log_var", log_var)
        self.register_buffer("visible_offset", torch.zeros(self.n_visible))
        self.register_buffer("hidden_offset", torch.zeros(self.n_hidden))

    @property
    def gaussian(self) -> bool:
        return self.visible == "gaussian"

    @property
    def variance(self) -> torch.Tensor:
        """sigma^2 of the Gaussian visible units (ones for Bernoulli units)."""
        return self.log_var.exp()

    # --- the energy ------------------------------------------------------------------------

    def _centred(self, v: torch.Tensor) -> torch.Tensor:
        """v - mu (v itself while the visible offsets are zero: one pass over v fewer)."""
        return v - self.visible_offset if bool(self.visible_offset.any()) else v

    def _u(self, v: torch.Tensor) -> torch.Tensor:
        centred = self._centred(v)
        return centred / self.variance if self.gaussian else centred

    def visible_term(self, v: torch.Tensor) -> torch.Tensor:
        """V(v), the visible units' own part of the energy (see the module docstring)."""
        if self.gaussian:
            return ((v - self.visible_bias).pow(2) / (2 * self.variance)).sum(-1)
        return -(self._centred(v) @ self.visible_bias)

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """c(v) = b + W^T u(v), shape ``(batch, n_hidden)``."""
        return torch.addmm(self.hidden_bias, self._u(self._flat_batch(v)), self.weight)

    def visible_input(self, h: torch.Tensor) -> torch.Tensor:
        """a + W (h - lambda), shape ``(batch, n_visible)``: the Bernoulli logits, or the
        Gaussian means."""
        hc = h - self.hidden_offset if bool(self.hidden_offset.any()) else h
        return torch.addmm(self.visible_bias, hc, self.weight.T)

    def joint_energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h), shape ``(batch,)``."""
        v = self._flat_batch(v)
        hc = h - self.hidden_offset
        return self.visible_term(v) - hc @ self.hidden_bias - ((self._u(v) @ self.weight) * hc).sum(-1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """The free energy F(v) = -log sum_h exp(-E(v, h)), shape ``(batch,)``."""
        v = self._flat_batch(v)
        c = torch.addmm(self.hidden_bias, self._u(v), self.weight)
        free = self.visible_term(v) - F.softplus(c).sum(-1)
        return free + c @ self.hidden_offset if bool(self.hidden_offset.any()) else free

    # --- conditionals ------------------------------------------------------------------------

    def hidden_probs(self, v: torch.Tensor, beta: torch.Tensor | float = 1.0) -> torch.Tensor:
        """p(h = 1 | v) at inverse temperature ``beta`` (a number or one per row)."""
        c = self.hidden_input(v)
        return torch.sigmoid(c if _is_one(beta) else _rows(beta, v) * c)

    def sample_hidden(
        self, v: torch.Tensor, beta: torch.Tensor | float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """h ~ p(h | v) at inverse temperature ``beta``."""
        return bernoulli(self.hidden_probs(v, beta), generator)

    def visible_mean(self, h: torch.Tensor, beta: torch.Tensor | float = 1.0) -> torch.Tensor:
        """E[v | h] at inverse temperature ``beta`` (the fantasy particles' display), shape
        ``(batch, *event_shape)``."""
        x = self.visible_input(h)
        mean = x if self.gaussian else torch.sigmoid(x if _is_one(beta) else _rows(beta, h) * x)
        return mean.reshape(h.shape[0], *self.event_shape)

    def sample_visible(
        self, h: torch.Tensor, beta: torch.Tensor | float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """v ~ p(v | h) at inverse temperature ``beta``, shape ``(batch, *event_shape)``."""
        x = self.visible_input(h)
        one = _is_one(beta)
        b = _rows(beta, h)
        if self.gaussian:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            v = x + noise * (self.variance.sqrt() if one else (self.variance / b).sqrt())
        else:
            v = bernoulli(torch.sigmoid(x if one else b * x), generator)
        return v.reshape(h.shape[0], *self.event_shape)

    # --- centering -----------------------------------------------------------------------

    @torch.no_grad()
    def set_offsets(self, visible: torch.Tensor | None = None, hidden: torch.Tensor | None = None) -> None:
        """Move the centering offsets mu / lambda, changing a and b so that E(v, h) changes
        by a constant only (the distribution is unchanged):

            a <- a + W (lambda' - lambda),    b <- b + W^T ((mu' - mu) / sigma^2 or (mu' - mu)).
        """
        if hidden is not None:
            hidden = hidden.to(self.hidden_offset)
            self.visible_bias.add_((hidden - self.hidden_offset) @ self.weight.T)
            self.hidden_offset.copy_(hidden)
        if visible is not None:
            visible = visible.to(self.visible_offset)
            shift = visible - self.visible_offset
            if self.gaussian:
                shift = shift / self.variance
            self.hidden_bias.add_(shift @ self.weight)
            self.visible_offset.copy_(visible)

    # --- the partition function ----------------------------------------------------------

    def log_partition(self, max_hidden: int = 20) -> torch.Tensor:
        """Exact log Z by enumerating the 2^n_hidden hidden states (the visible units summed
        or integrated out in closed form); refused above ``max_hidden`` hidden units (use
        :func:`nrf.metrics.ais_log_partition`)."""
        if self.n_hidden > max_hidden:
            raise ValueError(
                f"log_partition enumerates 2^n_hidden states: n_hidden = {self.n_hidden} > max_hidden = "
                f"{max_hidden}; estimate log Z by annealed importance sampling instead"
            )
        w = self.weight
        codes = torch.arange(2**self.n_hidden, device=w.device)
        bits = torch.arange(self.n_hidden, device=w.device)
        h = ((codes[:, None] >> bits) & 1).to(w.dtype)  # (2^n, n_hidden)
        parts = [self._log_marginal_hidden(chunk).logsumexp(0) for chunk in h.split(1 << 14)]
        return torch.stack(parts).logsumexp(0)

    def _log_marginal_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """log of the integral of exp(-E(v, h)) over v, one value per row of ``h``."""
        hc = h - self.hidden_offset
        field = hc @ self.weight.T  # (k, n_visible)
        hidden = hc @ self.hidden_bias
        if self.gaussian:
            var = self.variance
            mean = self.visible_bias + field
            # the integral of exp(-(v - a)^2 / 2 var + (v - mu) field / var) over v
            quad = (mean.pow(2) - self.visible_bias.pow(2)) / (2 * var) - self.visible_offset * field / var
            return hidden + quad.sum(-1) + 0.5 * (math.log(2 * math.pi) + self.log_var).sum()
        logits = self.visible_bias + field
        # sum over v in {0,1} of exp(a^T (v - mu) + (v - mu)^T W hc)
        return hidden + (F.softplus(logits) - self.visible_offset * logits).sum(-1)

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, visible={self.visible!r}"


def bernoulli(p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """1 where u < p with u ~ U(0, 1) per element (a Bernoulli(p) draw; faster on CPU than
    ``torch.bernoulli``)."""
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return torch.lt(u, p.detach(), out=u)  # the 0 / 1 written over u: no separate cast


def _is_one(beta: torch.Tensor | float) -> bool:
    """Whether ``beta`` is the number 1 (the model's own temperature: no scaling to do)."""
    return not isinstance(beta, torch.Tensor) and beta == 1.0


def _rows(beta: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """``beta`` as a column (one inverse temperature per row), or the number itself."""
    if isinstance(beta, torch.Tensor) and beta.dim() == 1:
        if beta.shape[0] != like.shape[0]:
            raise ValueError(f"beta has {beta.shape[0]} entries for {like.shape[0]} rows")
        return beta[:, None]
    return beta
