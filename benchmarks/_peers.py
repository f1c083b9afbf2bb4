"""Langevin samplers of peer libraries, run on nrf energy modules, for timing comparisons.

nrf's plain Langevin step (``nrf.samplers.Langevin(step_size=delta, noise_scale=s)``) is

    x <- x - delta * grad E(x) + s * eta,      eta ~ N(0, I),

with ``s = sqrt(2 delta)`` for the unadjusted sampler of exp(-E). :func:`make_peer_langevin`
builds the same update in each peer library below and returns ``run(x0, n_steps) -> x``. All
wrapper objects are built once there, so timing ``run`` measures the peer's sampling loop only.
Both peers draw the noise from torch's global RNG (seed it with ``torch.manual_seed``).

ebmkit (PyPI ``ebmkit``, import name ``ebm``; written against 0.16.0)
    API: ``ebm.LangevinDynamics(step_size=delta, noise_scale=s)`` built once, then
    ``sampler.sample(energy, x0, steps=n_steps)`` per run. The energy is used as it is: any
    callable (here the nn.Module itself) mapping ``(batch, *event_shape)`` to energies of shape
    ``(batch,)``, lower = more probable, the same convention as nrf.

    Update: ``x - step_size * dE/dx + noise_scale * randn_like(x)``, exactly nrf's update with
    the same two numbers (``noise_scale=None`` would also mean ``sqrt(2 * step_size)``).

    Per run: ``x0`` is detached and cloned, and every parameter of the module has
    ``requires_grad`` switched off for the duration of the call and restored afterwards (so
    autograd builds no graph over the weights), all under ``torch.enable_grad()``. Per step:
    one forward pass on ``x.detach().requires_grad_(True)``, one
    ``torch.autograd.grad(E.sum(), x)``, one ``randn_like``, the update, and a ``.detach()`` of
    the result. No gradient clipping or clamping (``grad_clip`` and ``clamp`` left at ``None``),
    no trajectory storage (``return_trajectory=False``), no host syncs.

TorchEBM (PyPI ``torchebm``, import name ``torchebm``; written against 0.8.9)
    API: ``torchebm.samplers.LangevinDynamics(model, step_size=delta, noise_scale=s / sqrt(2
    delta), dtype=..., device=...)`` built once, then ``sampler.sample(x=x0, n_steps=n_steps)``
    per run. ``model`` must be a ``torchebm.core.BaseModel`` (the sampler calls its
    ``gradient`` method), so the nrf module is wrapped once in a small ``BaseModel`` subclass
    whose ``forward`` returns the module's energies (shape ``(batch,)``, lower = more probable,
    the same convention as nrf; TorchEBM raises if the shape differs). The nrf module is a
    registered submodule of the wrapper, as a TorchEBM user's network would be. The sampler's
    dtype and device are taken from the module's first floating-point parameter or buffer
    (float32 / CPU if it has none); ``x0`` is cast to them.

    Update: an Euler-Maruyama step of dx = -grad E dt + sqrt(2 D) dW with D = noise_scale^2,
    i.e. ``x - step_size * dE/dx + noise_scale * sqrt(2 * step_size) * randn``. TorchEBM's
    ``noise_scale`` is therefore a temperature-like multiplier of sqrt(2 delta), not the noise
    standard deviation: nrf's ``s`` is matched exactly by passing ``s / sqrt(2 delta)`` (1.0 for
    ``s = sqrt(2 delta)``). It cannot match ``s = 0`` (noise-free descent): TorchEBM requires
    ``step_size > 0`` and ``noise_scale > 0``, and this function raises ``ValueError`` then.

    Per step, beyond the forward pass and ``torch.autograd.grad`` (with ``grad_outputs`` a fresh
    ``ones_like(E)``; the weights keep ``requires_grad``, so the forward also records their
    graph although only dE/dx is computed): the model call checks the energy's shape and
    ``grad_fn`` and runs inside an autocast context (a no-op without mixed precision); the drift
    is negated; the integrator allocates a zero time vector of shape ``(batch,)`` and a stage
    buffer of shape ``(1, *x.shape)``, copies the drift into it and combines it with an
    ``einsum``; the noise is multiplied by ``sqrt(step_size)`` and by ``sqrt(2 noise_scale^2)``
    separately; step size and noise scale are read from constant schedulers, and
    ``step_schedulers()`` walks the whole module tree (sampler, integrator, wrapper and every
    submodule of the energy) with ``nn.Module.apply``. The sampler runs under
    ``torch.no_grad()`` with gradients re-enabled inside the model call. No clamping
    (``clamp=None``), no trajectory or diagnostics (``return_trajectory=False``,
    ``return_diagnostics=False``, ``thin=1``), no ``.item()`` or other host syncs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
from collections.abc import Callable
from types import ModuleType

import torch
from torch import nn

PEERS: tuple[str, ...] = ("ebmkit", "torchebm")

# peer name -> (import name, distribution name on PyPI)
_PACKAGES: dict[str, tuple[str, str]] = {
    "ebmkit": ("ebm", "ebmkit"),
    "torchebm": ("torchebm", "torchebm"),
}
_TESTED_VERSIONS: dict[str, str] = {"ebmkit": "0.16.0", "torchebm": "0.8.9"}

Runner = Callable[[torch.Tensor, int], torch.Tensor]


def _check_name(name: str) -> tuple[str, str]:
    if name not in _PACKAGES:
        raise ValueError(f"unknown peer {name!r}; expected one of {', '.join(PEERS)}")
    return _PACKAGES[name]


def _import_peer(name: str) -> ModuleType:
    module_name, dist = _check_name(name)
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"peer {name!r} is not installed (import {module_name!r} failed: {err}); "
            f"install it with `pip install {dist}=={_TESTED_VERSIONS[name]}`"
        ) from err


def peer_version(name: str) -> str | None:
    """Installed version of peer ``name``, or ``None`` if it cannot be imported."""
    _, dist = _check_name(name)
    try:
        module = _import_peer(name)
    except ImportError:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(module, "__version__", None)
        return None if version is None else str(version)


def _device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of the first floating-point parameter or buffer (CPU / float32 if none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _check_step(step_size: float, noise_scale: float) -> None:
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a finite positive number, got {step_size!r}")
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(f"noise_scale must be a finite non-negative number, got {noise_scale!r}")


def _ebmkit_runner(energy: nn.Module, step_size: float, noise_scale: float) -> Runner:
    ebm = _import_peer("ebmkit")
    sampler = ebm.LangevinDynamics(step_size=step_size, noise_scale=noise_scale)

    def run(x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        out: torch.Tensor = sampler.sample(energy, x0, steps=n_steps)
        return out

    return run


def _torchebm_runner(energy: nn.Module, step_size: float, noise_scale: float) -> Runner:
    _import_peer("torchebm")
    from torchebm.core import BaseModel
    from torchebm.samplers import LangevinDynamics

    if noise_scale <= 0:
        raise ValueError("torchebm's LangevinDynamics needs noise_scale > 0 (it cannot run without noise)")

    class _NrfEnergy(BaseModel):
        """TorchEBM model whose energy is the wrapped nrf module's output."""

        def __init__(self, inner: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
            super().__init__(dtype=dtype, device=device)
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(x)
            return out

    device, dtype = _device_and_dtype(energy)
    model = _NrfEnergy(energy, device, dtype)
    # TorchEBM's noise is noise_scale * sqrt(2 * step_size) * N(0, I).
    relative_noise = noise_scale / math.sqrt(2.0 * step_size)
    sampler = LangevinDynamics(
        model, step_size=step_size, noise_scale=relative_noise, dtype=dtype, device=device
    )

    def run(x0: torch.Tensor, n_steps: int) -> torch.Tensor:
        out: torch.Tensor = sampler.sample(x=x0, n_steps=n_steps)
        return out

    return run


def make_peer_langevin(name: str, energy: nn.Module, step_size: float, noise_scale: float) -> Runner:
    """Return ``run(x0, n_steps) -> x``: ``n_steps`` of peer ``name``'s Langevin sampler on ``energy``.

    The update is x <- x - step_size * grad E(x) + noise_scale * N(0, I) in both peers (see the
    module docstring for how each is configured). ``energy`` maps ``(batch, *event_shape)`` to
    ``(batch,)``, lower = more probable.

    Raises
    ------
    ValueError
        For an unknown peer or invalid step size / noise scale.
    ImportError
        If the peer library is not installed.
    """
    _check_name(name)
    _check_step(step_size, noise_scale)
    if name == "ebmkit":
        return _ebmkit_runner(energy, step_size, noise_scale)
    return _torchebm_runner(energy, step_size, noise_scale)
