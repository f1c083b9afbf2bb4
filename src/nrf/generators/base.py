"""The auxiliary generator of Inclusive-NRF: q(x, h) = N(h; 0, I) N(x; g(h), sigma^2 I)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from nrf._checks import check_int_sequence, check_positive, check_positive_int

_LOG_2PI = math.log(2 * math.pi)


class LatentGenerator(nn.Module):
    """Base class of the directed generators h -> x.

    The joint density is

        log q(x, h) = log N(h; 0, I) + log N(x; g(h), sigma^2 I),

    where ``g`` is the network implemented by the subclass's :meth:`forward` (the mean of
    x given h). ``sigma`` is either fixed (a buffer, 0 allowed: a deterministic
    generator as in the authors' code) or learned (``learn_sigma=True``, stored as
    log sigma).

    Subclasses set ``self.net`` or override :meth:`forward`; the base supplies sampling
    and densities.
    """

    def __init__(
        self,
        latent_dim: int,
        event_shape: int | Sequence[int],
        *,
        sigma: float = 0.0,
        learn_sigma: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        self.event_shape = check_int_sequence("event_shape", shape, allow_empty=False)
        check_positive("sigma", sigma, allow_zero=not learn_sigma)
        self.learn_sigma = learn_sigma
        if learn_sigma:
            self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        else:
            self.register_buffer("_sigma", torch.tensor(float(sigma)))

    _sigma: torch.Tensor

    @property
    def sigma(self) -> torch.Tensor:
        """Standard deviation of x given h (a scalar tensor)."""
        if self.learn_sigma:
            return self.log_sigma.exp()
        return self._sigma

    def set_sigma(self, sigma: float) -> None:
        """Change a fixed ``sigma`` (e.g. annealing); not allowed when it is learned."""
        if self.learn_sigma:
            raise ValueError("set_sigma: sigma is learned (learn_sigma=True); change log_sigma instead")
        self._sigma.fill_(check_positive("sigma", sigma, allow_zero=True))

    def _reference(self) -> torch.Tensor:
        for p in self.parameters():
            return p
        return self.sigma

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """h ~ N(0, I), shape ``(n, latent_dim)``, on the module's device and dtype."""
        check_positive_int("n", n)
        ref = self._reference()
        return torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw (x, h) from q: h ~ N(0, I), x = g(h) + sigma * eps."""
        h = self.sample_latent(n, generator)
        mean = self(h)
        if not self.learn_sigma and float(self._sigma) == 0.0:
            return mean, h
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.sigma * eps, h

    def latent_log_prob(self, h: torch.Tensor) -> torch.Tensor:
        """log N(h; 0, I), shape ``(batch,)``."""
        return -0.5 * (h.pow(2).sum(-1) + self.latent_dim * _LOG_2PI)

    def conditional_log_prob(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log N(x; g(h), sigma^2 I), shape ``(batch,)``; needs sigma > 0."""
        sigma = self.sigma
        if float(sigma.detach()) <= 0.0:
            raise ValueError("conditional_log_prob needs sigma > 0; this generator has sigma = 0")
        if tuple(x.shape[1:]) != self.event_shape:
            x = x.reshape(x.shape[0], *self.event_shape)
        d = math.prod(self.event_shape)
        sq = (x - self(h)).pow(2).flatten(1).sum(-1)
        return -0.5 * sq / sigma.pow(2) - d * torch.log(sigma) - 0.5 * d * _LOG_2PI

    def log_prob(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Joint log q(x, h) = log N(h; 0, I) + log N(x; g(h), sigma^2 I)."""
        return self.latent_log_prob(h) + self.conditional_log_prob(x, h)
