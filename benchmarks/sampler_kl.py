"""Inclusive-NRF Fig. 2: samplers of p(x) q(h | x) compared by KL divergence.

p(x) is a 50-D Gaussian and q(x, h) a 100-D Gaussian (x and h 50-D each), both with
random covariances W W^T / d + 0.01 I (W standard normal d x d, zero means). The target
p(x) q(h | x) is then a 100-D Gaussian known in closed form. Chains start from ancestral
samples of q (Algorithm 2) and run T steps with delta_t = (a (1 + t / b))^-c,
a = 10, b = 1000, c = 2. After every ``record`` iterations, the Gaussian fitted to the
chains of each run is compared with the truth by KL(fit || truth).

Methods (same iteration budget: one iteration = one update of x and one of h):

* CoopNet (Lx = Lh = 20): one CoopNet transition counts as 20 iterations;
* SGLD / SGHMC (beta = 0.1): nrf's augmented target (Eq. 13, one inner LD step for h*
  with step ``--inner-step``, 0.01 by default), the paper's samplers;
* LD / HMC: Langevin and the Eq. 8 second-order (SGHMC-form, beta = 0.1) dynamics with
  the exact gradient of log p(x) q(h | x), as the paper's "LD" and "HMC" curves.

The runs are independent groups of chains simulated together as one batch (runs x chains).
The "exact samples" row is the KL of the Gaussian fitted to exact draws of the same size:
the floor that the finite number of chains puts under every method.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from nrf import plots
from nrf.bench import BenchResult, markdown_table, mean_sd, progress
from nrf.energies import GaussianEnergy
from nrf.samplers import SGHMC, CoopNet, Langevin, PolynomialDecay, Sampler
from nrf.targets import AugmentedTarget, Target
from nrf.targets.base import Position

NAME = "sampler-kl"
DESCRIPTION = "Inclusive-NRF Fig. 2: KL of SGLD / SGHMC / CoopNet / LD / HMC on a 100-D Gaussian"
RIDGE = 0.01
PAPER_NOTE = "paper: SGHMC beats exact-gradient LD, CoopNet close to SGLD (Fig. 2, values read from a plot)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dim", type=int, default=50, help="dimension of x and of h (default 50)")
    parser.add_argument("--chains", type=int, default=500, help="chains per run (default 500)")
    parser.add_argument("--steps", type=int, default=None, help="iterations (default 2000, quick 400)")
    parser.add_argument("--runs", type=int, default=None, help="independent runs (default 10, quick 3)")
    parser.add_argument("--record", type=int, default=20, help="iterations between KL records (default 20)")
    parser.add_argument("--inner-step", type=float, default=0.01, help="inner LD step for h* (default 0.01)")


def random_covariance(d: int, gen: torch.Generator) -> torch.Tensor:
    w = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return w @ w.T / d + RIDGE * torch.eye(d, dtype=torch.float64)


class Problem:
    """p(x), q(x, h) and the exact p(x) q(h | x) for one random draw."""

    def __init__(self, d: int, gen: torch.Generator) -> None:
        self.d = d
        zeros = torch.zeros(d, dtype=torch.float64)
        self.p = GaussianEnergy(zeros, random_covariance(d, gen))
        self.q = GaussianEnergy(torch.zeros(2 * d, dtype=torch.float64), random_covariance(2 * d, gen))
        s = self.q.covariance
        s_xx, s_xh, s_hh = s[:d, :d], s[:d, d:], s[d:, d:]
        b = torch.linalg.solve(s_xx, s_xh).T  # E[h | x] = b x
        s_h_given_x = s_hh - b @ s_xh
        sp = self.p.covariance
        cov = torch.empty(2 * d, 2 * d, dtype=torch.float64)
        cov[:d, :d] = sp
        cov[:d, d:] = sp @ b.T
        cov[d:, :d] = b @ sp
        cov[d:, d:] = s_h_given_x + b @ sp @ b.T
        self.truth = GaussianEnergy(torch.zeros(2 * d, dtype=torch.float64), 0.5 * (cov + cov.T))

    def log_q(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return -self.q(torch.cat([x, h], dim=1))

    def sample_q(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.q.sample(n, gen)
        return z[:, : self.d], z[:, self.d :]


class ExactJoint(Target):
    """log p(x) q(h | x) with its exact gradient (for the LD and HMC baselines)."""

    def __init__(self, truth: GaussianEnergy) -> None:
        self.truth = truth

    def log_prob(self, position: Position) -> torch.Tensor:
        return -self.truth(torch.cat(position, dim=1))


def gaussian_kl(samples: torch.Tensor, truth: GaussianEnergy) -> torch.Tensor:
    """KL(N(m0, S0) || truth) per run for ``samples`` of shape (runs, chains, dim)."""
    k = samples.shape[-1]
    m0 = samples.mean(1)
    centred = samples - m0.unsqueeze(1)
    s0 = centred.transpose(1, 2) @ centred / (samples.shape[1] - 1)
    prec = truth.precision
    diff = truth.mean - m0
    trace = (prec.unsqueeze(0) * s0).sum(dim=(1, 2))
    maha = ((diff @ prec) * diff).sum(1)
    logdet1 = 2 * torch.log(torch.diagonal(truth.scale_tril)).sum()
    logdet0 = torch.linalg.slogdet(s0)[1]
    return 0.5 * (trace + maha - k + logdet1 - logdet0)


def _methods(
    schedule: PolynomialDecay, problem: Problem, inner_step: float
) -> dict[str, tuple[Sampler, Target, int]]:
    aug = AugmentedTarget(problem.p, problem.log_q, inner_step_size=inner_step)
    exact = ExactJoint(problem.truth)
    return {
        "CoopNet (Lx = Lh = 20)": (CoopNet(schedule, 20, 20), aug, 20),
        "SGLD (nrf, Eq. 13)": (Langevin(schedule), aug, 1),
        "LD (exact gradient)": (Langevin(schedule), exact, 1),
        "SGHMC (nrf, Eq. 13)": (SGHMC(schedule, beta=0.1), aug, 1),
        "HMC (exact gradient)": (SGHMC(schedule, beta=0.1), exact, 1),
    }


def run(args: argparse.Namespace) -> BenchResult:
    steps = args.steps or (400 if args.quick else 2000)
    runs = args.runs or (3 if args.quick else 10)
    d, chains, record = args.dim, args.chains, args.record
    gen = torch.Generator().manual_seed(args.seed)
    problem = Problem(d, gen)
    schedule = PolynomialDecay(10, 1000, 2)
    x0, h0 = problem.sample_q(runs * chains, gen)
    curves: dict[str, list[list[float]]] = {}
    finals: dict[str, list[float]] = {}
    for name, (sampler, target, cost) in _methods(schedule, problem, args.inner_step).items():
        progress(f"sampling with {name}")
        chain_gen = torch.Generator().manual_seed(args.seed + 1)
        if isinstance(target, AugmentedTarget):
            target.restart()  # new chains from ancestral samples of q
        state = sampler.init((x0, h0))
        iters, kls = [0], [gaussian_kl(torch.cat(state.position, 1).view(runs, chains, 2 * d), problem.truth)]
        transitions = steps // cost
        every = max(1, record // cost)
        for i in range(transitions):
            state, _ = sampler.step(target, state, chain_gen)
            if (i + 1) % every == 0 or i + 1 == transitions:
                z = torch.cat(state.position, 1).view(runs, chains, 2 * d)
                iters.append((i + 1) * cost)
                kls.append(gaussian_kl(z, problem.truth))
        table = torch.stack(kls, 1)  # (runs, records)
        curves[name] = table.tolist()
        finals[name] = table[:, -1].tolist()
        curves.setdefault("_iterations_" + name, [iters])
    exact_kl = gaussian_kl(problem.truth.sample(runs * chains, gen).view(runs, chains, 2 * d), problem.truth)
    finals["exact samples (floor)"] = exact_kl.tolist()

    rows = []
    for name, values in finals.items():
        m, s = mean_sd(values)
        rows.append([name, f"{m:.2f} ± {s:.2f}"])
    headers = ["method", f"KL after {steps} iterations (mean ± sd, {runs} runs x {chains} chains)"]
    fig, axes = plots.new_figure(1, size=5.0)
    ax = axes[0, 0]
    for name in finals:
        if name not in curves:
            continue
        its = curves["_iterations_" + name][0]
        t = torch.tensor(curves[name])
        mean, sd = t.mean(0), t.std(0) if runs > 1 else torch.zeros(t.shape[1])
        ax.plot(its, mean.numpy(), label=name)
        ax.fill_between(its, (mean - sd).numpy(), (mean + sd).numpy(), alpha=0.2)
    m_floor, _ = mean_sd(finals["exact samples (floor)"])
    ax.axhline(m_floor, color="gray", ls=":", label="exact samples (floor)")
    ax.set_yscale("log")
    ax.set_xlabel("iterations")
    ax.set_ylabel("KL(fitted Gaussian || truth)")
    ax.legend(fontsize=7)
    figure = plots.save(fig, args.out / "sampler_kl.png")
    results: dict[str, Any] = {
        "settings": {
            "dim": d,
            "chains": chains,
            "runs": runs,
            "steps": steps,
            "schedule": schedule.config(),
            "beta": 0.1,
            "inner_step_size": args.inner_step,
            "ridge": RIDGE,
            "seed": args.seed,
        },
        "final_kl": finals,
        "curves": {k: v for k, v in curves.items() if not k.startswith("_")},
        "iterations": {k[len("_iterations_") :]: v[0] for k, v in curves.items() if k.startswith("_")},
    }
    return BenchResult(markdown_table(headers, rows), results, [figure], [PAPER_NOTE])
