"""Energies with a closed-form density and exact samples, for tests and benchmarks.

For these the energy is the exact negative log-density, E(x) = -log p(x), so
``log_prob(x) == -energy(x)`` and the partition function is 1.
"""

from __future__ import annotations

import math

import torch

from nrf._checks import check_positive_int
from nrf.energies.base import Energy

_LOG_2PI = math.log(2 * math.pi)


def _as_float_tensor(name: str, value: torch.Tensor | list | float) -> torch.Tensor:
    t = torch.as_tensor(value)
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real tensor, got dtype {t.dtype}")
    t = t.to(torch.get_default_dtype() if not t.is_floating_point() else t.dtype)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite")
    return t


def _cholesky(name: str, cov: torch.Tensor) -> torch.Tensor:
    if not torch.allclose(cov, cov.transpose(-1, -2), atol=1e-6, rtol=1e-5):
        raise ValueError(f"{name} must be symmetric")
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(f"{name} must be positive definite")
    return chol


class GaussianEnergy(Energy):
    """Multivariate normal N(mean, covariance) as an energy.

    E(x) = 1/2 (x - mu)^T Sigma^-1 (x - mu) + 1/2 log det(2 pi Sigma).

    >>> g = GaussianEnergy(torch.zeros(2), torch.eye(2))
    >>> round(float(g(torch.zeros(1, 2))), 6) == round(math.log(2 * math.pi), 6)
    True
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    scale_tril: torch.Tensor
    precision: torch.Tensor
    _whiten: torch.Tensor

    def __init__(self, mean: torch.Tensor | list | float, covariance: torch.Tensor | list | float) -> None:
        super().__init__()
        mu = _as_float_tensor("mean", mean)
        if mu.dim() != 1:
            raise ValueError(f"mean must be 1-D, got shape {tuple(mu.shape)}")
        cov = _as_float_tensor("covariance", covariance).to(mu.dtype)
        d = mu.shape[0]
        if tuple(cov.shape) != (d, d):
            raise ValueError(f"covariance must have shape ({d}, {d}) to match mean, got {tuple(cov.shape)}")
        chol = _cholesky("covariance", cov)
        self.event_shape = (d,)
        self.register_buffer("mean", mu)
        self.register_buffer("covariance", cov)
        self.register_buffer("scale_tril", chol)
        self.register_buffer("precision", torch.cholesky_inverse(chol))
        eye = torch.eye(d, dtype=mu.dtype)
        self.register_buffer("_whiten", torch.linalg.solve_triangular(chol, eye, upper=False).T.contiguous())
        self._log_norm = 0.5 * d * _LOG_2PI + float(torch.log(torch.diagonal(chol)).sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self._flat_batch(x) - self.mean) @ self._whiten  # L^-1 (x - mu), row-wise
        return 0.5 * z.pow(2).sum(-1) + self._log_norm

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density log N(x; mean, covariance)."""
        return -self(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Exact gradient of the log-density, -Sigma^-1 (x - mu)."""
        return -(self._flat_batch(x) - self.mean) @ self.precision

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` exact samples, shape ``(n, d)``."""
        check_positive_int("n", n)
        eps = torch.randn(n, self.event_shape[0], generator=generator, dtype=self.mean.dtype,
                          device=self.mean.device)  # fmt: skip
        return self.mean + eps @ self.scale_tril.T


class GaussianMixtureEnergy(Energy):
    """Mixture sum_k w_k N(mu_k, Sigma_k) as an energy, E(x) = -log p(x).

    Parameters
    ----------
    means:
        ``(K, d)`` component means.
    covariances:
        ``(K, d, d)`` covariances, ``(K,)`` or a float standard deviation (isotropic).
    weights:
        ``(K,)`` non-negative weights (normalized here); uniform by default.

    >>> mix = GaussianMixtureEnergy(torch.tensor([[-2.0], [2.0]]), 0.5)
    >>> mix.sample(3, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 1])
    """

    means: torch.Tensor
    scale_trils: torch.Tensor
    log_weights: torch.Tensor
    _whiten: torch.Tensor
    _log_norms: torch.Tensor

    def __init__(
        self,
        means: torch.Tensor | list,
        covariances: torch.Tensor | list | float,
        weights: torch.Tensor | list | None = None,
    ) -> None:
        super().__init__()
        mu = _as_float_tensor("means", means)
        if mu.dim() != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(mu.shape)}")
        k, d = mu.shape
        cov = _as_float_tensor("covariances", covariances).to(mu.dtype)
        if cov.dim() == 0 or (cov.dim() == 1 and cov.shape[0] == k):
            std = cov.expand(k)
            if bool((std <= 0).any()):
                raise ValueError("covariances given as standard deviations must be > 0")
            cov = torch.eye(d, dtype=mu.dtype) * std.pow(2).view(k, 1, 1)
        if tuple(cov.shape) != (k, d, d):
            raise ValueError(
                f"covariances must have shape ({k}, {d}, {d}), ({k},) or be a float, got {tuple(cov.shape)}"
            )
        w = (
            torch.full((k,), 1.0 / k, dtype=mu.dtype)
            if weights is None
            else _as_float_tensor("weights", weights)
        )
        if tuple(w.shape) != (k,) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(
                f"weights must be {k} non-negative numbers with a positive sum, got {w.tolist()}"
            )
        self.event_shape = (d,)
        self.register_buffer("means", mu)
        chol = _cholesky("covariances", cov)
        self.register_buffer("scale_trils", chol)
        eye = torch.eye(d, dtype=mu.dtype).expand(k, d, d)
        self.register_buffer("_whiten", torch.linalg.solve_triangular(chol, eye, upper=False))
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        self.register_buffer("_log_norms", -log_det - 0.5 * d * _LOG_2PI)
        self.register_buffer("log_weights", torch.log(w.to(mu.dtype) / w.sum()))

    @property
    def n_components(self) -> int:
        return int(self.means.shape[0])

    def component_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; mu_k, Sigma_k) for every component, shape ``(batch, K)``."""
        diff = self._flat_batch(x).unsqueeze(1) - self.means  # (n, K, d)
        z = torch.einsum("kij,nkj->nki", self._whiten, diff)  # L_k^-1 (x - mu_k)
        return -0.5 * z.pow(2).sum(-1) + self._log_norms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.component_log_prob(x) + self.log_weights, dim=-1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-density."""
        return -self(x)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior component probabilities p(k | x), shape ``(batch, K)``."""
        return torch.softmax(self.component_log_prob(x) + self.log_weights, dim=-1)

    def sample(
        self, n: int, generator: torch.Generator | None = None, *, return_labels: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` exact samples (and their component labels with ``return_labels``)."""
        check_positive_int("n", n)
        labels = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.event_shape[0], generator=generator, dtype=self.means.dtype,
                          device=self.means.device)  # fmt: skip
        x = self.means[labels] + (self.scale_trils[labels] @ eps.unsqueeze(-1)).squeeze(-1)
        return (x, labels) if return_labels else x
