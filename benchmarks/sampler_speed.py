"""Sampler step cost against the energy's own forward + input-gradient (the floor), and
against the Langevin samplers of the peers (ebmkit, TorchEBM), side by side in one run.

Energies (Inclusive-NRF tables, weight norm with data-dependent init, parameters
requiring gradients as during training): the GMM MLP of Table VI (batch 100), the MNIST
MLP of Table VIII (batch 100) and the CIFAR conv net of Table IX (batch 64).

Rows, per energy (milliseconds per step, median over repeats; ratio = step / floor):

* floor: ``x.requires_grad_(); autograd.grad(E(x).sum(), x)``, nothing else;
* nrf Langevin / SGHMC (beta 0.1): one ``sampler.step`` (gradient, noise, update);
* nrf HMC: one leapfrog step (transitions of 5 leapfrog steps with MH, divided by 5);
* nrf augmented SGLD: one step of Langevin on the (x, h) target of Eq. 13 with the
  paper's generator for that data (sigma 0.1): energy and generator gradients plus the
  inner step, so its floor is higher by construction;
* ebmkit / TorchEBM Langevin: the peers' samplers on the same module and batch (a
  ``bench`` extra: ``pip install -e .[bench]``); rows say "not installed" otherwise.

nrf reuses the weight-normalized weights between steps (``nrf.nn.frozen_weights``),
since the parameters do not change while sampling; the floor and the peers recompute
them at every forward, as a plain ``nn.Module`` call does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from nrf.bench import BenchResult, markdown_table, progress
from nrf.energies import paper_potential
from nrf.generators import paper_generator
from nrf.nn import data_dependent_init
from nrf.samplers import HMC, SGHMC, Langevin, Sampler
from nrf.targets import AugmentedTarget, BoltzmannTarget, Target

NAME = "sampler-speed"
DESCRIPTION = "ms per step of nrf samplers vs the energy's forward+gradient floor and vs ebmkit / TorchEBM"

STEP_SIZE = 0.01
LEAPFROG = 5
ENERGIES = {  # name: (preset, batch, steps, quick steps)
    "GMM MLP (Table VI)": ("gmm", 100, 200, 50),
    "MNIST MLP (Table VIII)": ("mnist", 100, 200, 30),
    "CIFAR conv (Table IX)": ("cifar", 64, 10, 2),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5, quick 2)")
    parser.add_argument("--energies", default="all", help="subset, e.g. gmm,mnist (default all)")


def _interleaved_ms(fns: dict[str, Callable[[int], Any]], steps: int, repeats: int) -> dict[str, float]:
    """Median ms per step of each function, timed round-robin (repeat r of every method
    before repeat r + 1 of any), so that slow drifts of a shared machine hit all alike."""
    for fn in fns.values():
        fn(max(1, steps // 10))  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def _floor(energy: torch.nn.Module, x0: torch.Tensor) -> Callable[[int], Any]:
    def go(n: int) -> None:
        for _ in range(n):
            x = x0.detach().requires_grad_(True)
            torch.autograd.grad(energy(x).sum(), x)

    return go


def _nrf(sampler: Sampler, target: Target, z0: Any) -> Callable[[int], Any]:
    gen = torch.Generator(device="cpu").manual_seed(0)

    def go(n: int) -> None:
        if isinstance(target, AugmentedTarget):
            target.restart()  # new chains from ancestral samples of q
        state = sampler.init(z0)
        for _ in range(n):
            state, _ = sampler.step(target, state, gen)

    return go


def _peer(name: str, energy: torch.nn.Module, x0: torch.Tensor) -> Callable[[int], Any] | str:
    try:
        import _peers as peers
    except ImportError:  # pragma: no cover - benchmarks/peers.py ships with the benchmarks
        return "adapter missing"
    if peers.peer_version(name) is None:
        return "not installed"
    run = peers.make_peer_langevin(name, energy, STEP_SIZE, (2 * STEP_SIZE) ** 0.5)
    return lambda n: run(x0, n)


def run(args: argparse.Namespace) -> BenchResult:
    repeats = args.repeats or (2 if args.quick else 5)
    wanted = None if args.energies == "all" else set(args.energies.split(","))
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    rows: list[list[str]] = []
    results: dict[str, Any] = {"threads": torch.get_num_threads(), "repeats": repeats, "energies": {}}
    notes: list[str] = []
    for label, (preset, batch, steps, quick_steps) in ENERGIES.items():
        if wanted is not None and preset not in wanted:
            continue
        progress(f"timing {label}")
        n = quick_steps if args.quick else steps
        energy = paper_potential(preset)
        x0 = torch.randn(batch, *energy.event_shape, generator=gen)
        data_dependent_init(energy, torch.randn(max(256, batch), *energy.event_shape, generator=gen))
        generator = paper_generator(preset, sigma=0.1)
        energy, generator, x0 = energy.to(device), generator.to(device), x0.to(device)
        generator.eval()
        with torch.no_grad():
            xg, hg = generator.sample(batch)
        boltzmann = BoltzmannTarget(energy)
        augmented = AugmentedTarget(energy, generator, inner_step_size=STEP_SIZE)
        fns: dict[str, Callable[[int], Any]] = {
            "floor (forward + input gradient)": _floor(energy, x0),
            "nrf Langevin": _nrf(Langevin(STEP_SIZE), boltzmann, x0),
            "nrf SGHMC": _nrf(SGHMC(STEP_SIZE, beta=0.1), boltzmann, x0),
            # transitions of LEAPFROG leapfrog steps (plus the initial gradient), per leapfrog step
            "nrf HMC (per leapfrog step)": _nrf(HMC(STEP_SIZE, n_leapfrog=LEAPFROG), boltzmann, x0),
            "nrf augmented SGLD (x, h)": _nrf(Langevin(STEP_SIZE), augmented, (xg, hg)),
        }
        missing: dict[str, str] = {}
        for peer in ("ebmkit", "torchebm"):
            fn = _peer(peer, energy, x0)
            if isinstance(fn, str):
                missing[f"{peer} Langevin"] = fn
            else:
                fns[f"{peer} Langevin"] = fn
        measured = _interleaved_ms(fns, n, repeats)
        measured["nrf HMC (per leapfrog step)"] /= LEAPFROG
        timings: dict[str, float | str] = {**measured, **missing}
        floor = float(timings["floor (forward + input gradient)"])
        peer_times = [v for k, v in timings.items() if k.endswith("Langevin") and "nrf" not in k]
        fastest_peer = min((v for v in peer_times if isinstance(v, float)), default=None)
        for method, value in timings.items():
            if isinstance(value, str):
                rows.append([label, method, value, "", ""])
                continue
            vs_peer = f"{value / fastest_peer:.2f}" if fastest_peer and method.startswith("nrf") else ""
            rows.append([label, method, f"{value:.3f}", f"{value / floor:.2f}", vs_peer])
        results["energies"][label] = {"batch": batch, "steps": n, "ms_per_step": timings}
    headers = ["energy", "method", "ms / step", "x floor", "x fastest peer"]
    notes.append(f"torch threads: {torch.get_num_threads()}; device: {device}; median of {repeats} repeats")
    return BenchResult(markdown_table(headers, rows), results, [], notes)
