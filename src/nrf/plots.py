"""Matplotlib figures shared by the demo, the trainer's evaluation hooks and benchmarks.

All functions draw on a given ``Axes`` (or return a new ``Figure``) and never call
``plt.show``; the Agg backend is used when no display is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _pyplot() -> Any:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps") and not _has_display():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def new_figure(ncols: int = 1, nrows: int = 1, size: float = 3.6) -> tuple[Any, np.ndarray]:
    """A figure with a grid of square axes, returned as ``(fig, axes_array)``."""
    plt = _pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes


def save(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` to ``path`` (folders created) and close it."""
    plt = _pyplot()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p, dpi=dpi)
    plt.close(fig)
    return p


def scatter_2d(
    ax: Any,
    x: torch.Tensor | np.ndarray,
    centres: torch.Tensor | np.ndarray | None = None,
    title: str = "",
    lim: float | None = None,
) -> None:
    """Points of a 2-D data set, with mode centres as red crosses."""
    pts = np.asarray(x, dtype=float)
    ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="tab:blue")
    if centres is not None:
        c = np.asarray(centres, dtype=float)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=25, color="tab:red", linewidths=1)
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)


@torch.no_grad()
def energy_heatmap(
    ax: Any,
    energy: Callable[[torch.Tensor], torch.Tensor],
    lim: float,
    centres: torch.Tensor | np.ndarray | None = None,
    title: str = "",
    resolution: int = 200,
) -> None:
    """The log-density -E(x) of a 2-D energy on [-lim, lim]^2 as a heat map.

    Colours span the 2nd to 99.8th percentile of -E over the grid, so a few extreme values
    (an unbounded network far from the data) do not wash out the picture. ``energy`` is a
    module or any callable mapping ``(n, 2)`` to ``(n,)``.
    """
    ticks = torch.linspace(-lim, lim, resolution)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    module = energy if isinstance(energy, torch.nn.Module) else None
    ref = next(iter(module.parameters()), None) if module is not None else None
    if ref is not None:
        grid = grid.to(ref.device, ref.dtype)
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        log_p = -energy(grid).float().cpu().view(resolution, resolution)
    finally:
        if module is not None:
            module.train(was_training)
    lo, hi = torch.quantile(log_p.flatten(), torch.tensor([0.02, 0.998])).tolist()
    ax.imshow(log_p.numpy(), origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis", vmin=lo, vmax=hi)
    if centres is not None:
        c = np.asarray(centres, dtype=float)
        ax.scatter(c[:, 0], c[:, 1], marker="x", s=20, color="white", linewidths=0.8)
    ax.set_title(title, fontsize=9)


def image_grid(
    ax: Any,
    images: torch.Tensor | np.ndarray,
    ncol: int = 10,
    title: str = "",
    value_range: tuple[float, float] | None = None,
) -> None:
    """Tile ``(n, H, W)``, ``(n, 1, H, W)``, ``(n, 3, H, W)`` or ``(n, H, W, 3)`` images."""
    arr = np.asarray(images, dtype=float)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    if arr.ndim == 3:
        arr = arr[..., None]
    n, h, w, c = arr.shape
    lo, hi = value_range if value_range is not None else (arr.min(), arr.max())
    arr = np.clip((arr - lo) / max(hi - lo, 1e-12), 0, 1)
    nrow = -(-n // ncol)
    canvas = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1, c))
    for i in range(n):
        r, q = divmod(i, ncol)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = arr[i]
    ax.imshow(canvas.squeeze(-1) if c == 1 else canvas, cmap="gray" if c == 1 else None)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
