"""k-nearest-neighbour estimate of the KL divergence between two sample sets.

For samples X_1..X_n ~ p and Y_1..Y_m ~ q in R^d (Wang, Kulkarni & Verdu 2009),

    D_KL(p || q) ~ (d / n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1)),

where rho_k(i) is the distance from X_i to its k-th nearest neighbour among the other
X_j (j != i) and nu_k(i) the distance from X_i to its k-th nearest neighbour among the
Y_j. "Using KL Divergences to Monitor Training" (the BEAM paper, Eq. 17) states the
k = 1 case, but its print drops the log (it reads (d / n) sum_i nu / rho); the estimator
implemented here is the published one, with the log. The reverse divergence D(q || p)
swaps the roles of the two sets (:func:`knn_kl_pair` gives both). Samples of shape
``(n, ...)`` are flattened to ``(n, d)``.

Distances are found chunk by chunk (``chunk`` rows of X against all of X and all of Y),
so 10,000 x 784 sets need only a few chunk x 10,000 matrices at a time: candidates come
from the ||x||^2 + ||y||^2 - 2 x.y expansion (float64), and the k neighbours chosen are
measured again as ||x - y|| directly, so the result does not depend on ``chunk``.

Ties. A zero distance (a duplicate row, common in binary data such as binarized MNIST)
makes log(nu / rho) undefined; ``ties`` says what to do:

* ``"error"`` (default): raise, naming the set and the number of rows concerned.
* ``"jitter"``: dequantize first, adding independent U[0, s)^d noise (s = ``jitter``,
  drawn from ``generator``) to every row of both sets. For data on a lattice of spacing
  s (binary data: s = 1; 8-bit images scaled to [0, 1]: s = 1/255) the dequantized
  densities are p(floor(x / s)) / s^d, and their KL divergence equals that of the
  discrete distributions exactly, so the estimator then targets the discrete D(p || q).
  A jitter much smaller than the spacing breaks the ties but leaves rho ~ s for every
  duplicated row, so the estimate then grows like d log(1 / s): do not use a tiny jitter
  on data with duplicates.
* ``"drop"``: ignore zero distances, i.e. rho_k(i) and nu_k(i) are the distances to the
  k-th nearest row *not equal* to X_i (rows are equal when every coordinate is). On
  continuous data (no duplicates) this is the plain estimator; on data with atoms it is
  biased: it sees only the distances to distinct rows, not how often a row repeats, so
  divergences that come from different masses on shared points (p(x) != q(x) on the same
  x) go unseen. Deterministic, and never fails while each row has k distinct neighbours.

Minibatches (``batch_size``). The BEAM paper computes the divergences on minibatches of
the validation set and averages them: with ``batch_size`` set, X and Y are cut into
consecutive blocks of ``batch_size`` rows (a last incomplete block is dropped), the i-th
block of X is paired with the i-th block of Y (as many pairs as the smaller set has
blocks), and the estimate is the mean of the pairs' estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nrf._checks import check_choice, check_positive, check_positive_int

TIES = ("error", "jitter", "drop")


@dataclass(frozen=True)
class KnnKL:
    """Forward D(data || model) and reverse D(model || data) kNN estimates; with
    minibatches, the means over ``n_batches`` pairs of blocks and their standard
    deviations (0 for one batch)."""

    forward: float
    reverse: float
    forward_sd: float
    reverse_sd: float
    n_batches: int


def knn_kl_divergence(
    p_samples: torch.Tensor,
    q_samples: torch.Tensor,
    k: int = 1,
    *,
    batch_size: int | None = None,
    ties: str = "error",
    jitter: float | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 1024,
) -> float:
    """The k-NN estimate of D_KL(p || q) from ``p_samples`` (n rows) and ``q_samples``
    (m rows):

        (d / n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

    (see the module docstring for ``ties``, ``jitter`` and ``batch_size``). ``chunk`` rows
    of ``p_samples`` are compared at a time; the result does not depend on it.

    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g) + 0.5
    >>> round(knn_kl_divergence(x, y), 2)  # closed form: |mu|^2 / 2 = 0.25
    0.27
    """
    names = ("p_samples", "q_samples")
    p, q = _prepare(p_samples, q_samples, names, k, batch_size, ties, jitter, generator, chunk)
    return float(_estimates(p, q, k, batch_size, ties, chunk, names).mean())


def knn_kl_pair(
    model_samples: torch.Tensor,
    data_samples: torch.Tensor,
    k: int = 1,
    *,
    batch_size: int | None = None,
    ties: str = "error",
    jitter: float | None = None,
    generator: torch.Generator | None = None,
    chunk: int = 1024,
) -> KnnKL:
    """Forward D(data || model) and reverse D(model || data) on the same rows (jittered
    once when ``ties = "jitter"``); the arguments are those of :func:`knn_kl_divergence`.

    >>> g = torch.Generator().manual_seed(0)
    >>> pair = knn_kl_pair(torch.randn(400, 2, generator=g) * 2, torch.randn(400, 2, generator=g))
    >>> pair.forward < pair.reverse  # a wide model covers the data: small forward KL
    True
    """
    names = ("model_samples", "data_samples")
    model, data = _prepare(model_samples, data_samples, names, k, batch_size, ties, jitter, generator, chunk)
    forward = _estimates(data, model, k, batch_size, ties, chunk, (names[1], names[0]))
    reverse = _estimates(model, data, k, batch_size, ties, chunk, names)
    n = forward.shape[0]
    return KnnKL(
        forward=float(forward.mean()),
        reverse=float(reverse.mean()),
        forward_sd=float(forward.std()) if n > 1 else 0.0,
        reverse_sd=float(reverse.std()) if n > 1 else 0.0,
        n_batches=n,
    )


def _flat(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have shape (n, d) (or (n, ...), flattened), got a scalar")
    flat = x.detach().reshape(x.shape[0], -1) if x.dim() > 1 else x.detach().reshape(-1, 1)
    if flat.shape[1] == 0:
        raise ValueError(f"{name} must have at least one dimension per row, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} holds {int((~torch.isfinite(flat)).sum())} non-finite values")
    return flat.to(torch.float64)


def _prepare(
    p_samples: torch.Tensor,
    q_samples: torch.Tensor,
    names: tuple[str, str],
    k: int,
    batch_size: int | None,
    ties: str,
    jitter: float | None,
    generator: torch.Generator | None,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets checked, flattened to float64 rows on ``p_samples``' device, and
    dequantized for ``ties = "jitter"``."""
    k = check_positive_int("k", k)
    check_positive_int("chunk", chunk)
    check_choice("ties", ties, TIES)
    p = _flat(names[0], p_samples)
    q = _flat(names[1], q_samples).to(p.device)
    if p.shape[1] != q.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension per row: got {p.shape[1]} "
            f"(shape {tuple(p_samples.shape)}) and {q.shape[1]} (shape {tuple(q_samples.shape)})"
        )
    n, m = p.shape[0], q.shape[0]
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
        if n < batch_size or m < batch_size:
            raise ValueError(
                f"batch_size = {batch_size} needs at least that many rows in {names[0]} and {names[1]}, "
                f"got {n} and {m}"
            )
        n = m = batch_size
    # each set is the p of one direction (knn_kl_pair) or p then q (knn_kl_divergence)
    for name, rows in ((names[0], n), (names[1], m)):
        if rows < k + 1:
            raise ValueError(
                f"k = {k} needs at least k + 1 = {k + 1} rows of {name} per estimate, got {rows}"
            )
    if ties == "jitter":
        if jitter is None:
            raise ValueError(
                "ties = 'jitter' needs jitter, the lattice spacing of the data (1 for binary data), got None"
            )
        s = check_positive("jitter", jitter)
        p = p + s * torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
        q = q + s * torch.rand(q.shape, generator=generator, dtype=q.dtype, device=q.device)
    elif jitter is not None:
        raise ValueError(
            f"jitter is only used with ties = 'jitter', got jitter = {jitter!r} with ties = {ties!r}"
        )
    return p, q


def _estimates(
    p: torch.Tensor,
    q: torch.Tensor,
    k: int,
    batch_size: int | None,
    ties: str,
    chunk: int,
    names: tuple[str, str],
) -> torch.Tensor:
    """One estimate of D(p || q) per pair of blocks (one in all without ``batch_size``)."""
    ids_p = ids_q = None
    if ties == "drop":
        ids = torch.unique(torch.cat([p, q]), dim=0, return_inverse=True)[1]
        ids_p, ids_q = ids[: p.shape[0]], ids[p.shape[0] :]
    if batch_size is None:
        return _estimate(p, q, k, ties, chunk, ids_p, ids_q, names).reshape(1)
    pairs = min(p.shape[0], q.shape[0]) // batch_size
    out = []
    for b in range(pairs):
        s = slice(b * batch_size, (b + 1) * batch_size)
        block_p = None if ids_p is None else ids_p[s]
        block_q = None if ids_q is None else ids_q[s]
        out.append(_estimate(p[s], q[s], k, ties, chunk, block_p, block_q, names))
    return torch.stack(out)


def _estimate(
    p: torch.Tensor,
    q: torch.Tensor,
    k: int,
    ties: str,
    chunk: int,
    ids_p: torch.Tensor | None,
    ids_q: torch.Tensor | None,
    names: tuple[str, str],
) -> torch.Tensor:
    """D(p || q) from one pair of sets; ``names`` are the sets' argument names."""
    n, d = p.shape
    m = q.shape[0]
    rho = _kth_distance(p, p, k, chunk, ids_p, ids_p, exclude_self=True)
    nu = _kth_distance(p, q, k, chunk, ids_p, ids_q, exclude_self=False)
    for name, dist in ((names[0], rho), (names[1], nu)):
        if ties == "drop" and bool(torch.isinf(dist).any()):
            raise ValueError(
                f"ties = 'drop': {int(torch.isinf(dist).sum())} rows of {names[0]} have fewer than k = {k} "
                f"rows of {name} different from them"
            )
        if bool((dist == 0).any()):
            raise ValueError(
                f"{int((dist == 0).sum())} rows of {names[0]} have their k-th nearest neighbour (k = {k}) in "
                f"{name} at distance 0 (duplicate rows), where log(nu / rho) is undefined: pass ties = "
                "'jitter' with jitter = the data's lattice spacing (1 for binary data), or ties = 'drop'"
            )
    return d * (nu.log() - rho.log()).mean() + math.log(m / (n - 1))


def _kth_distance(
    x: torch.Tensor,
    ref: torch.Tensor,
    k: int,
    chunk: int,
    ids_x: torch.Tensor | None,
    ids_ref: torch.Tensor | None,
    *,
    exclude_self: bool,
) -> torch.Tensor:
    """Distance from every row of ``x`` to its k-th nearest row of ``ref`` (``ref`` has at
    least k + 1 rows): not the row itself with ``exclude_self`` (``ref`` is ``x``), not an
    equal row when ``ids`` are given (inf when fewer than k rows are left). Candidates come
    from cdist's ||x||^2 + ||y||^2 - 2 x.y expansion; the k chosen are measured again as
    ||x - y|| directly, so the distances do not depend on the chunking."""
    centre = ref.mean(0)
    xc_all, rc = x - centre, ref - centre  # centred: less cancellation in the expansion
    out = []
    for start in range(0, x.shape[0], chunk):
        rows = slice(start, start + chunk)
        dist = torch.cdist(xc_all[rows], rc, compute_mode="use_mm_for_euclid_dist")
        if exclude_self:
            i = torch.arange(dist.shape[0], device=x.device)
            dist[i, start + i] = math.inf
        if ids_x is not None and ids_ref is not None:
            dist.masked_fill_(ids_x[rows, None] == ids_ref[None, :], math.inf)
        candidates, idx = dist.topk(k, dim=1, largest=False)
        exact = torch.linalg.vector_norm(x[rows, None, :] - ref[idx], dim=-1)
        out.append(exact.masked_fill(torch.isinf(candidates), math.inf).max(dim=1).values)
    return torch.cat(out)
