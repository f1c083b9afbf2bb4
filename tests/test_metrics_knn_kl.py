"""k-NN KL estimator: closed forms of Gaussians, an independent reference, ties, minibatches
and bad input. Tolerances are standard errors measured from independent replicates."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch import nn

from nrf.data import Batch
from nrf.metrics import KnnKL, knn_kl_divergence, knn_kl_pair
from nrf.objectives import Objective, StepContext
from nrf.registry import ConfigError
from nrf.training.config import load_config
from nrf.training.data import TrainingData
from nrf.training.evaluation import EVALUATORS, build_evaluators
from nrf.training.run import train
from training_helpers import write_config

REPLICATES = 10


def gaussian_kl(d: int, mu: float, s: float) -> float:
    """D(N(0, I) || N(mu 1, s^2 I)) in d dimensions."""
    return 0.5 * (d / s**2 + d * mu**2 / s**2 - d + 2 * d * math.log(s))


def gaussian_kl_reverse(d: int, mu: float, s: float) -> float:
    """D(N(mu 1, s^2 I) || N(0, I)) in d dimensions."""
    return 0.5 * (d * s**2 + d * mu**2 - d - 2 * d * math.log(s))


def replicates(draw: Callable[[torch.Generator], float], seed: int) -> tuple[float, float]:
    """Mean and standard error of REPLICATES independent estimates."""
    g = torch.Generator().manual_seed(seed)
    values = torch.tensor([draw(g) for _ in range(REPLICATES)], dtype=torch.float64)
    return float(values.mean()), float(values.std() / math.sqrt(REPLICATES))


def two_gaussians(
    g: torch.Generator, n: int, d: int, mu: float, s: float
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) * s + mu


@pytest.mark.parametrize("d", [2, 10])
def test_one_gaussian_gives_zero(d: int) -> None:
    mean, se = replicates(lambda g: knn_kl_divergence(*two_gaussians(g, 1000, d, 0.0, 1.0)), seed=d)
    assert abs(mean) <= 3 * se, (mean, se)
    assert se < 0.05  # the replicates really are informative


@pytest.mark.parametrize(
    ("mu", "s", "k"),
    [(0.5, 1.0, 1), (1.0, 1.5, 1)],
)
def test_two_gaussians_match_closed_form_in_2d(mu: float, s: float, k: int) -> None:
    exact = gaussian_kl(2, mu, s)
    mean, se = replicates(lambda g: knn_kl_divergence(*two_gaussians(g, 2000, 2, mu, s), k), seed=11)
    assert abs(mean - exact) <= 3 * se, (mean, se, exact)


def test_shifted_gaussians_both_directions_in_2d() -> None:
    """A pure shift is symmetric: forward and reverse both |mu|^2 / 2."""
    exact = gaussian_kl(2, 0.5, 1.0)
    assert exact == pytest.approx(gaussian_kl_reverse(2, 0.5, 1.0))
    g = torch.Generator().manual_seed(5)
    pairs = [knn_kl_pair(*two_gaussians(g, 2000, 2, 0.5, 1.0)[::-1]) for _ in range(REPLICATES)]
    for values in ([p.forward for p in pairs], [p.reverse for p in pairs]):
        t = torch.tensor(values, dtype=torch.float64)
        assert abs(float(t.mean()) - exact) <= 3 * float(t.std()) / math.sqrt(REPLICATES)


def test_forward_and_reverse_differ() -> None:
    """Data N(0, I), a model twice as wide N(0, 1.5^2 I): D(data || model) = 0.255 is much
    smaller than D(model || data) = 0.439 (the estimate of the latter is biased low at this
    n, but stays far above the forward one)."""
    g = torch.Generator().manual_seed(3)
    forward, reverse = [], []
    for i in range(REPLICATES):
        data, model = two_gaussians(g, 2000, 2, 0.0, 1.5)
        pair = knn_kl_pair(model, data)
        forward.append(pair.forward)
        reverse.append(pair.reverse)
        if i == 0:
            assert isinstance(pair, KnnKL)
            assert (pair.n_batches, pair.forward_sd, pair.reverse_sd) == (1, 0.0, 0.0)
            assert pair.forward == knn_kl_divergence(data, model)
            assert pair.reverse == knn_kl_divergence(model, data)
    f, r = torch.tensor(forward), torch.tensor(reverse)
    diff = r - f
    assert float(diff.mean()) > 5 * float(diff.std()) / math.sqrt(REPLICATES)
    assert abs(float(f.mean()) - gaussian_kl(2, 0.0, 1.5)) <= 3 * float(f.std()) / math.sqrt(REPLICATES)


@pytest.mark.parametrize(("d", "k"), [(2, 1), (10, 1), (10, 4)])
def test_matches_a_kd_tree_reference(d: int, k: int) -> None:
    """The same formula from scipy's KD-tree neighbours, to rounding (d = 10 included:
    there the estimator's finite-sample bias is large, so its closed form is no check)."""
    rng = np.random.default_rng(d + k)
    x = rng.normal(size=(700, d))
    y = rng.normal(size=(500, d)) * 1.2 + 0.3
    rho = cKDTree(x).query(x, k=k + 1)[0][:, k]
    nu = cKDTree(y).query(x, k=k)[0]
    nu = nu[:, k - 1] if k > 1 else nu
    reference = d * np.mean(np.log(nu / rho)) + math.log(500 / 699)
    assert knn_kl_divergence(torch.from_numpy(x), torch.from_numpy(y), k) == pytest.approx(
        reference, abs=1e-10
    )


def test_chunks_give_the_same_value_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(1200, 10, generator=g), torch.randn(900, 10, generator=g) * 1.3
    values = {knn_kl_divergence(x, y, 2, chunk=c) for c in (5, 7, 100, 1024, 1200, 100_000)}
    assert len(values) == 1
    binary = torch.bernoulli(torch.full((600, 30), 0.3), generator=g)
    other = torch.bernoulli(torch.full((500, 30), 0.5), generator=g)
    assert len({knn_kl_divergence(binary, other, ties="drop", chunk=c) for c in (3, 64, 600)}) == 1


def test_rows_are_flattened() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 2, 3, 4, generator=g), torch.randn(200, 24, generator=g)
    assert knn_kl_divergence(x, y) == knn_kl_divergence(x.reshape(300, 24), y)
    a, b = torch.randn(300, generator=g), torch.randn(200, generator=g)
    assert knn_kl_divergence(a, b) == knn_kl_divergence(a[:, None], b[:, None])


def test_self_matches_are_excluded() -> None:
    """With q = p, nu is 0; dropping equal rows makes nu the distance to the nearest other
    row, i.e. rho, so the estimate is exactly log(n / (n - 1))."""
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match=r"400 rows of p_samples have their k-th nearest .* in q_samples"):
        knn_kl_divergence(x, x)
    assert knn_kl_divergence(x, x, ties="drop") == pytest.approx(math.log(400 / 399), abs=1e-12)


def test_duplicate_rows_need_a_tie_rule() -> None:
    g = torch.Generator().manual_seed(4)
    p = torch.bernoulli(torch.full((2000, 3), 0.3), generator=g)  # 8 states: many duplicates
    q = torch.bernoulli(torch.full((2000, 3), 0.5), generator=g)
    with pytest.raises(
        ValueError, match=r"rows of p_samples have their k-th nearest neighbour .* distance 0"
    ):
        knn_kl_divergence(p, q)
    with pytest.raises(ValueError, match="ties = 'jitter' needs jitter"):
        knn_kl_divergence(p, q, ties="jitter")
    dropped = knn_kl_divergence(p, q, ties="drop")
    assert math.isfinite(dropped)
    assert dropped == knn_kl_divergence(p, q, ties="drop")
    # the rows of one repeated point have no distinct neighbour at all
    with pytest.raises(ValueError, match=r"ties = 'drop': 50 rows of p_samples have fewer than k = 1"):
        knn_kl_divergence(torch.ones(50, 3), q, ties="drop")


def test_jitter_targets_the_discrete_divergence() -> None:
    """Dequantizing {0, 1}^3 data with U[0, 1)^3 noise keeps the KL of the discrete
    distributions (product Bernoulli 0.3 against 0.5: 3 (0.3 log 0.6 + 0.7 log 1.4))."""
    exact = 3 * (0.3 * math.log(0.3 / 0.5) + 0.7 * math.log(0.7 / 0.5))

    def draw(g: torch.Generator) -> float:
        p = torch.bernoulli(torch.full((3000, 3), 0.3), generator=g)
        q = torch.bernoulli(torch.full((3000, 3), 0.5), generator=g)
        return knn_kl_divergence(p, q, ties="jitter", jitter=1.0, generator=g)

    mean, se = replicates(draw, seed=8)
    assert abs(mean - exact) <= 3 * se, (mean, se, exact)
    p = torch.bernoulli(torch.full((500, 3), 0.3), generator=torch.Generator().manual_seed(0))
    one = knn_kl_divergence(
        p, p.flip(0), ties="jitter", jitter=1.0, generator=torch.Generator().manual_seed(1)
    )
    two = knn_kl_divergence(
        p, p.flip(0), ties="jitter", jitter=1.0, generator=torch.Generator().manual_seed(1)
    )
    assert one == two


def test_minibatches_average_the_blocks() -> None:
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(1050, 2, generator=g), torch.randn(830, 2, generator=g) + 0.5
    assert knn_kl_divergence(x, y, batch_size=830) == knn_kl_divergence(x[:830], y)
    blocks = [knn_kl_divergence(x[i : i + 200], y[i : i + 200]) for i in range(0, 800, 200)]
    assert knn_kl_divergence(x, y, batch_size=200) == pytest.approx(sum(blocks) / 4, abs=1e-12)
    pair = knn_kl_pair(y, x, batch_size=200)
    assert pair.n_batches == 4
    assert pair.forward == pytest.approx(sum(blocks) / 4, abs=1e-12)
    assert pair.forward_sd == pytest.approx(float(torch.tensor(blocks, dtype=torch.float64).std()), abs=1e-12)
    assert pair.reverse_sd > 0


def test_bad_arguments_are_named() -> None:
    x, y = torch.randn(20, 3), torch.randn(20, 3)
    with pytest.raises(ValueError, match=r"same dimension per row: got 3 \(shape \(20, 3\)\) and 4"):
        knn_kl_divergence(x, torch.randn(20, 4))
    with pytest.raises(ValueError, match="model_samples and data_samples must have the same dimension"):
        knn_kl_pair(x, torch.randn(20, 2))
    with pytest.raises(ValueError, match=r"p_samples must have shape .* got a scalar"):
        knn_kl_divergence(torch.tensor(1.0), y)
    with pytest.raises(
        ValueError, match=r"q_samples must have at least one dimension per row, got shape \(20, 0\)"
    ):
        knn_kl_divergence(x, torch.zeros(20, 0))
    with pytest.raises(TypeError, match=r"p_samples must be a torch\.Tensor, got ndarray"):
        knn_kl_divergence(np.zeros((20, 3)), y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be an int >= 1, got 0"):
        knn_kl_divergence(x, y, 0)
    with pytest.raises(
        ValueError, match=r"k = 20 needs at least k \+ 1 = 21 rows of p_samples per estimate, got 20"
    ):
        knn_kl_divergence(x, y, 20)
    with pytest.raises(ValueError, match=r"k = 3 needs at least k \+ 1 = 4 rows of data_samples .* got 3"):
        knn_kl_pair(x, y[:3], 3)
    with pytest.raises(
        ValueError, match="batch_size = 30 needs at least that many rows in p_samples and q_samples"
    ):
        knn_kl_divergence(x, y, batch_size=30)
    with pytest.raises(ValueError, match="chunk must be an int >= 1, got 0"):
        knn_kl_divergence(x, y, chunk=0)
    with pytest.raises(ValueError, match=r"ties must be one of \['error', 'jitter', 'drop'\], got 'round'"):
        knn_kl_divergence(x, y, ties="round")
    with pytest.raises(ValueError, match=r"jitter is only used with ties = 'jitter', got jitter = 0\.1"):
        knn_kl_divergence(x, y, jitter=0.1)
    with pytest.raises(ValueError, match=r"jitter must be a finite number > 0, got -1\.0"):
        knn_kl_divergence(x, y, ties="jitter", jitter=-1.0)
    bad = y.clone()
    bad[3, 1] = math.nan
    with pytest.raises(ValueError, match="q_samples holds 1 non-finite values"):
        knn_kl_divergence(x, bad)


# --- the knn-kl evaluator ------------------------------------------------------------------


class GaussianSamples(Objective):
    """Samples N(shift, I) from the evaluation generator; nothing to train."""

    def __init__(self, dim: int, shift: float) -> None:
        super().__init__()
        self.energy = nn.Linear(dim, 1)
        self.dim, self.shift = dim, shift

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": list(self.energy.parameters())}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        return {}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator) + self.shift


def _data(validation: bool) -> TrainingData:
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(3000, 2, generator=g)
    return TrainingData(train=rows[500:], validation=rows[:500] if validation else None, kind="points")


@pytest.mark.parametrize("validation", [True, False])
def test_evaluator_compares_samples_with_held_out_rows(validation: bool, tmp_path: Path) -> None:
    """Validation rows when there are some, else the first 10 % of the training rows."""
    data = _data(validation)
    evaluate = EVALUATORS.build({"name": "knn-kl", "n_samples": 400}, data=data)
    metrics = evaluate(GaussianSamples(2, 0.5), 10, tmp_path, torch.Generator().manual_seed(3))
    held_out = data.validation[:400] if data.validation is not None else data.train[:250]
    samples = torch.randn(400, 2, generator=torch.Generator().manual_seed(3)) + 0.5
    expected = knn_kl_pair(samples, held_out, ties="drop")
    assert metrics == {"kl_forward": expected.forward, "kl_reverse": expected.reverse}


def test_evaluator_options_and_bad_options(tmp_path: Path) -> None:
    data = _data(True)
    spec = {"name": "knn-kl", "k": 2, "n_samples": 400, "batch_size": 100, "ties": "jitter", "jitter": 0.01}
    evaluate = build_evaluators([spec], data)[0]
    metrics = evaluate(GaussianSamples(2, 0.0), 0, tmp_path, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    samples = torch.randn(400, 2, generator=g)
    expected = knn_kl_pair(
        samples, data.validation[:400], 2, batch_size=100, ties="jitter", jitter=0.01, generator=g
    )
    assert metrics == {"kl_forward": expected.forward, "kl_reverse": expected.reverse}
    bad: list[tuple[dict[str, Any], str]] = [
        ({"ties": "round"}, r"train\.evaluators\[0\].*ties must be one of"),
        ({"ties": "jitter"}, "jitter must be given exactly when ties = 'jitter'"),
        ({"jitter": 1.0}, "jitter must be given exactly when ties = 'jitter'"),
        ({"k": 0}, "k must be an int >= 1, got 0"),
        ({"batch_size": 1000}, r"batch_size = 1000 is more than the rows compared \(500 held-out rows"),
        ({"k": 600}, r"k = 600 needs at least k \+ 1 = 601 rows per estimate, got 500"),
        ({"n_samples": "many"}, r"train\.evaluators\[0\]\.n_samples: expected int"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            build_evaluators([{"name": "knn-kl", **extra}], data)


def test_tiny_run_logs_both_divergences(tmp_path: Path) -> None:
    cfg = load_config(
        write_config(tmp_path, steps=10, eval_every=5, data_extra="validation_fraction = 0.2"),
        ["train.evaluators=[{name = 'knn-kl', n_samples = 300}]"],
    )
    run, final = train(cfg)
    assert set(final) == {"kl_forward", "kl_reverse"}
    assert all(math.isfinite(v) for v in final.values())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("phase") == "eval"]
    assert evals
    assert all({"kl_forward", "kl_reverse"} <= set(r) for r in evals)
