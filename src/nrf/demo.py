"""What ``make demo`` runs until a training method lands: the data sets and an
*untrained* inclusive-NRF pair (potential + generator) on the 32-mode GMM, drawn as
figures. Nothing here is trained and no figure claims to show a learned model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nrf import plots
from nrf.data import (
    DataNotFoundError,
    bimodal1d,
    gmm32,
    grid25,
    load_digits,
    load_kddcup99,
    load_mnist,
    ring8,
)
from nrf.energies import paper_potential
from nrf.generators import paper_generator
from nrf.nn import data_dependent_init


def run_demo(out: str | Path, seed: int = 0, root: str | None = None) -> list[Path]:
    """Write the demo figures into ``out`` and return their paths; prints a summary."""
    out_dir = Path(out)
    gen = torch.Generator().manual_seed(seed)
    written: list[Path] = []

    fig, axes = plots.new_figure(4)
    gmm = gmm32(generator=gen)
    plots.scatter_2d(axes[0, 0], gmm.x, gmm.centres, f"32-mode GMM ({len(gmm)} points)", lim=6)
    ring = ring8(generator=gen)
    plots.scatter_2d(axes[0, 1], ring.x, ring.centres, "8-Gaussian ring", lim=3)
    grid = grid25(generator=gen)
    plots.scatter_2d(axes[0, 2], grid.x, grid.centres, "5 x 5 grid", lim=3)
    bi = bimodal1d(generator=gen)
    axes[0, 3].hist(bi.x.squeeze(-1).numpy(), bins=60, color="tab:blue")
    axes[0, 3].set_title("1-D bimodal mixture", fontsize=9)
    written.append(plots.save(fig, out_dir / "synthetic_datasets.png"))
    print(f"synthetic data: 32-mode GMM {tuple(gmm.x.shape)}, ring {tuple(ring.x.shape)}, "
          f"grid {tuple(grid.x.shape)}, bimodal {tuple(bi.x.shape)}")  # fmt: skip

    potential = paper_potential("gmm")
    data_dependent_init(potential, gmm.x)
    generator = paper_generator("gmm")
    with torch.no_grad():
        generator.eval()
        x_gen, _ = generator.sample(1000, gen)
    fig, axes = plots.new_figure(2)
    plots.energy_heatmap(axes[0, 0], potential, 6, gmm.centres, "UNTRAINED potential -E(x), Table VI net")
    plots.scatter_2d(axes[0, 1], x_gen, gmm.centres, "UNTRAINED generator samples", lim=6)
    written.append(plots.save(fig, out_dir / "untrained_gmm_model.png"))
    with torch.no_grad():
        e_data = float(potential(gmm.x).mean())
    print(
        f"untrained Table VI potential (data-dependent init only): mean energy on the GMM data {e_data:+.3f}"
    )

    digits = load_digits()
    fig, axes = plots.new_figure(1)
    plots.image_grid(axes[0, 0], digits.images[:50], ncol=10, title="scikit-learn digits (8 x 8)")
    written.append(plots.save(fig, out_dir / "digits.png"))
    print(f"scikit-learn digits: {digits.images.shape}")

    try:
        mnist = load_mnist("train", root)
        fig, axes = plots.new_figure(1)
        plots.image_grid(axes[0, 0], mnist.images[:50], ncol=10, title="MNIST train (first 50)")
        written.append(plots.save(fig, out_dir / "mnist.png"))
        print(f"MNIST train: {mnist.images.shape} {mnist.images.dtype}, md5 verified")
    except DataNotFoundError:
        print("MNIST: not found (set $NRF_DATA_DIR or run `nrf data download mnist`)")
    try:
        kdd = load_kddcup99(root)
        print(f"KDDCUP99: {kdd.features.shape[0]} rows x {kdd.features.shape[1]} features, "
              f"{int(kdd.labels.sum())} anomalies ('normal.')")  # fmt: skip
    except DataNotFoundError:
        print("KDDCUP99: not found (set $NRF_DATA_DIR or run `nrf data download kddcup99`)")

    print("\nNo model is trained by this demo yet: the figures of the potential and the generator")
    print("show freshly initialized networks. Figures written:")
    for p in written:
        print(f"  {p}")
    return written
