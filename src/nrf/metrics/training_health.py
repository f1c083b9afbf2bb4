"""Figures of a fit's health computed from energies: how far data and negatives are apart,
how much the energy of fixed rows moves between epochs, and how held-out normal rows score
against the training rows; and the rules that flag a fit from them.

With E_t the energies of a fixed set of reference training rows after epoch t, m_t and s_t
their mean and standard deviation, and V_t the energies of held-out normal rows:

* energy gap: mean E(data) - mean E(negatives) (contrastive methods; near 0 when the
  negatives look like the data, large when the sampler falls behind the energy; the epoch
  mean of the objective's logged ``energy_data - energy_samples``, see
  :mod:`nrf.training.health`);
* shift: (mean E_t - mean E_{t-1}) / s_{t-1}, the move of the whole energy in units of
  its spread (the anomaly scores' offset is arbitrary, so only a trend matters);
* rank stability: Spearman's correlation of E_t and E_{t-1} over the reference rows; an
  anomaly score is its ranking, so this is the figure that says whether the scores of
  the last epochs agree (1: the same ranking; a fit whose ranking swings between epochs
  has no meaningful final model);
* tail stability: the share of the reference rows among the highest 10 % of E_{t-1} that
  are among the highest 10 % of E_t (1: the same rows head the ranking; about 0.1 for an
  unrelated ranking). Unlike the rank correlation it ignores the order within the bulk,
  where near-duplicate rows (most of KDDCUP99's attack rows) have near-equal energies and
  trade places at every check;
* held-out shift: (mean V_t - m_t) / s_t, how much worse held-out normal rows score than
  the training rows, in units of the training spread (large: the energy memorized the
  training rows or drifted off the data);
* held-out rank: the mean fraction of training rows whose energy is below each held-out
  row's (0.5: held-out rows look like training rows; near 1: they look anomalous).

R-hat and the effective sample size of diagnostic chains (:mod:`nrf.metrics.chains`) say
whether a sampler of fixed step and length mixes on the model; a model with thin, steep
directions (e.g. a small denoising noise level on data near a lower-dimensional set) has
R-hat > 1.2 at any step small enough to be stable, however good its energy is as a score,
so :class:`HealthRules` flags R-hat only when given a ``max_rhat``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr


def energy_shift(previous: np.ndarray, current: np.ndarray) -> float:
    """(mean current - mean previous) / sd previous over the same rows."""
    spread = float(np.std(previous))
    return float((np.mean(current) - np.mean(previous)) / (spread if spread > 0 else 1.0))


def rank_stability(previous: np.ndarray, current: np.ndarray) -> float:
    """Spearman's rank correlation of the same rows' energies at two times (1 if both are
    constant, 0 if one of them is)."""
    if np.ptp(previous) == 0 or np.ptp(current) == 0:
        return 1.0 if np.ptp(previous) == np.ptp(current) == 0 else 0.0
    return float(spearmanr(previous, current).statistic)


def tail_stability(previous: np.ndarray, current: np.ndarray, share: float = 0.1) -> float:
    """The share of the rows among the highest ``share`` of ``previous`` that are among the
    highest ``share`` of ``current`` (the same rows, at two times).

    >>> tail_stability(np.arange(10.0), np.arange(10.0) ** 2, share=0.2)
    1.0
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share: expected a fraction in (0, 1), got {share}")
    previous, current = np.asarray(previous), np.asarray(current)
    if previous.shape != current.shape or previous.ndim != 1:
        raise ValueError(
            f"previous, current: expected the same 1-D shape, got {previous.shape} and {current.shape}"
        )
    k = max(1, round(share * previous.size))
    top = np.intersect1d(np.argsort(previous, kind="stable")[-k:], np.argsort(current, kind="stable")[-k:])
    return float(top.size / k)


def heldout_shift(train: np.ndarray, heldout: np.ndarray) -> float:
    """(mean held-out - mean train) / sd train."""
    spread = float(np.std(train))
    return float((np.mean(heldout) - np.mean(train)) / (spread if spread > 0 else 1.0))


def heldout_rank(train: np.ndarray, heldout: np.ndarray) -> float:
    """Mean over held-out rows of the fraction of training energies below theirs."""
    ordered = np.sort(np.asarray(train, dtype=np.float64))
    return float(np.searchsorted(ordered, np.asarray(heldout, dtype=np.float64)).mean() / ordered.size)


@dataclass(frozen=True)
class HealthRules:
    """Thresholds above / below which a fit's last figures flag it (see :func:`health_flags`)."""

    min_tail_stability: float = 0.75
    min_rank_stability: float | None = None  # None: reported only (near-ties reorder; module docstring)
    max_heldout_rank: float = 0.75
    max_abs_shift: float | None = None  # None: reported only (the energy's offset is arbitrary)
    max_rhat: float | None = None  # None: R-hat is reported, not a flag (see the module docstring)
    window: int = 3  # the stability figures are judged by their lowest over the last `window` checks
    # NCE's logged noise_accuracy, the balanced accuracy of its data-vs-noise classifier
    # (chance 0.5); below this, the energy has learned little beyond the noise density
    min_noise_accuracy: float = 0.6


def history_flags(checks: Sequence[Mapping[str, float]], rules: HealthRules | None = None) -> list[str]:
    """:func:`health_flags` of a fit's checked epochs ``checks`` (oldest first): the last
    check's figures, with ``rank_stability`` and ``tail_stability`` replaced by their lowest
    value over the last ``rules.window`` checks (one check can land high by chance while the
    scores still swing)."""
    r = rules or HealthRules()
    if not checks:
        return []
    figures = dict(checks[-1])
    for key in ("rank_stability", "tail_stability"):
        recent = [c[key] for c in checks[-r.window :] if key in c]
        if recent:
            figures[key] = min(recent)
    return health_flags(figures, r)


def health_flags(figures: Mapping[str, float], rules: HealthRules | None = None) -> list[str]:
    """Human-readable flags for the figures of a fit's last epoch (those present)."""
    r = rules or HealthRules()
    flags = []
    if "noise_accuracy" in figures and figures["noise_accuracy"] < r.min_noise_accuracy:
        flags.append(
            f"noise_accuracy {figures['noise_accuracy']:.3f} < {r.min_noise_accuracy}: the NCE classifier "
            "hardly tells the training rows from its noise (chance is 0.5), so the energy has learned "
            "little beyond the noise density and ranks rows poorly (method='dsm' is the default)"
        )
    if "tail_stability" in figures and figures["tail_stability"] < r.min_tail_stability:
        flags.append(
            f"tail_stability {figures['tail_stability']:.3f} < {r.min_tail_stability}: other reference rows "
            "came to head the energy ranking between recent checks (the scores still swing)"
        )
    if (
        r.min_rank_stability is not None
        and "rank_stability" in figures
        and figures["rank_stability"] < r.min_rank_stability
    ):
        flags.append(
            f"rank_stability {figures['rank_stability']:.3f} < {r.min_rank_stability}: the energies of the "
            "reference rows were ranked differently after the last two epochs (the scores still swing)"
        )
    if "heldout_rank" in figures and figures["heldout_rank"] > r.max_heldout_rank:
        flags.append(
            f"heldout_rank {figures['heldout_rank']:.3f} > {r.max_heldout_rank}: held-out normal rows score "
            "above most training rows (the energy memorized the training rows or drifted)"
        )
    if (
        r.max_abs_shift is not None
        and "energy_shift" in figures
        and abs(figures["energy_shift"]) > r.max_abs_shift
    ):
        flags.append(
            f"energy_shift {figures['energy_shift']:.3f}: the energy moved by more than {r.max_abs_shift} "
            "of its spread in the last epoch"
        )
    if r.max_rhat is not None and "rhat" in figures and figures["rhat"] > r.max_rhat:
        flags.append(
            f"rhat {figures['rhat']:.3f} > {r.max_rhat}: the model's sampling chains disagree (not mixed)"
        )
    return flags
