"""``nrf rollout RUN --steps N --out FILE.npz``: multi-step rollouts of a trained transition
model (a ``transition-ebm`` or ``transition-regression`` run) on test trajectories of the
run's data set, with their scores and a strip plot beside the file."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nrf._files import write_atomic
from nrf.cli.train_cmd import _common, _output, _seeded_generator


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rollout",
        help="roll a trained transition model out on test trajectories: .npz, scores and a strip plot",
    )
    p.add_argument("run_dir", help="a run of a transition-ebm or transition-regression config")
    p.add_argument("--steps", type=int, required=True, help="predicted steps per rollout")
    p.add_argument("--out", required=True,
                   help="output .npz (predicted, true, mse, frechet); FILE.png and FILE.json beside it; "
                        "refused if it exists, unless --overwrite")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace --out (and its .png, .json)")
    p.add_argument("--trajectories", type=int, default=200,
                   help="test trajectories, each rolled out from its first window (default 200)")  # fmt: skip
    p.add_argument("--checkpoint", choices=["best", "latest"], default="best")
    _common(p)
    p.set_defaults(handler=run_rollout)


def run_rollout(args: argparse.Namespace) -> int:
    from nrf.applications.trajectories import RolloutScores, diverged_share, finite_steps, rollouts_of
    from nrf.data.trajectories import CONTEXT, TRAJECTORY_SETS, load_trajectories
    from nrf.metrics.trajectories import frechet_per_step, rollout_mse
    from nrf.training.config import load_config
    from nrf.training.run import load_run
    from nrf.training.rundir import RunDir

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.trajectories < 2:
        raise ValueError(
            f"--trajectories must be >= 2 (the Fréchet distance needs a spread), got {args.trajectories}"
        )
    out = _output(args.out, args.overwrite, (".npz",))
    side = [out.with_suffix(".png"), out.with_suffix(".json")]
    for path in side:
        if path.exists() and not args.overwrite:
            raise FileExistsError(f"--out: {path} exists; pass --overwrite to replace it")
    cfg = load_config(RunDir(Path(args.run_dir)).config, run_directory=True)
    if cfg.data.name not in TRAJECTORY_SETS:
        raise ValueError(
            f"{args.run_dir}: trained on {cfg.data.name!r}, not a trajectory set "
            f"({', '.join(TRAJECTORY_SETS)})"
        )
    steps = cfg.data.trajectory_steps
    length = max(steps or 0, CONTEXT + args.steps)
    seed = cfg.run.seed if args.seed is None else args.seed
    data = load_trajectories(cfg.data.name, n_train=1, n_test=args.trajectories, steps=length, seed=seed)
    device = args.device or "cpu"
    objective = load_run(args.run_dir, args.checkpoint, device)
    if not callable(getattr(objective, "predict", None)):
        raise ValueError(
            f"{args.run_dir}: its objective ({type(objective).__name__}) is not a transition model"
        )
    generator = _seeded_generator(args, device)
    pred, true = rollouts_of(objective, data.test, data.test_actions, [0], args.steps, generator=generator,
                             device=device, nonfinite="nan")  # fmt: skip
    mse, fd = finite_steps(rollout_mse, pred, true), finite_steps(frechet_per_step, pred, true)
    diverged, mean = diverged_share(pred), float(fd.mean())
    scores = {"run": str(args.run_dir), "data": cfg.data.name, "steps": args.steps,
              "trajectories": args.trajectories, "seed": seed,
              **RolloutScores(mse, fd, mean, diverged).to_json()}  # JSON has no inf: null  # fmt: skip
    png = _strip_plot(pred, true)

    def write_arrays(f: BinaryIO) -> None:
        np.savez(f, predicted=pred.astype(np.float32), true=true.astype(np.float32), mse=mse, frechet=fd)

    write_atomic(out, write_arrays)
    write_atomic(side[1], _bytes_writer(json.dumps(scores, indent=2).encode()))
    write_atomic(side[0], _bytes_writer(png))
    horizon = min(10, args.steps)
    print(f"{pred.shape[0]} rollouts of {args.steps} steps -> {out} ({side[0].name}, {side[1].name})")
    print(f"  MSE at steps 1..{horizon}: " + " ".join(f"{m:.3g}" for m in mse[:horizon]))
    print(f"  Fréchet distance, mean over steps: {mean:.4g}")
    if diverged:
        live = int(np.isfinite(fd).sum())
        print(
            f"  {diverged:.1%} of the rollouts left the finite numbers (NaN in the .npz from there on); "
            f"the scores are inf (JSON null) from step {live + 1}"
        )
    return 0


def _bytes_writer(data: bytes) -> Callable[[BinaryIO], None]:
    def write(f: BinaryIO) -> None:
        f.write(data)

    return write


def _strip_figure(pred: np.ndarray, true: np.ndarray, shown: int = 4) -> Any:
    """The figure of :func:`_strip_plot`: 2-D states as paths (true solid, predicted
    dashed) of ``shown`` rollouts; wider states as one strip per dimension of the first
    rollout. Axes are labelled and carry few enough ticks not to overlap."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    d = pred.shape[2]
    if d == 2:
        k = min(shown, pred.shape[0])
        fig = Figure(figsize=(3.2 * k, 3.4))
        axes = fig.subplots(1, k, squeeze=False)[0]
        for i, ax in enumerate(axes):
            ax.plot(true[i, :, 0], true[i, :, 1], "-", color="k", label="true")
            ax.plot(pred[i, :, 0], pred[i, :, 1], "--", color="tab:red", label="predicted")
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_title(f"rollout {i}", fontsize=9)
            ax.set_xlabel("x", fontsize=8)
            ax.set_ylabel("y", fontsize=8)
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(MaxNLocator(4))
            ax.tick_params(labelsize=7)
        axes[0].legend(fontsize=7)
    else:
        fig = Figure(figsize=(6.5, 0.9 * d + 0.8))
        axes = fig.subplots(d, 1, sharex=True, squeeze=False)[:, 0]
        for j, ax in enumerate(axes):
            ax.plot(true[0, :, j], "-", color="k")
            ax.plot(pred[0, :, j], "--", color="tab:red")
            ax.set_ylabel(f"state {j}", fontsize=7, rotation=0, ha="right", va="center")
            ax.yaxis.set_major_locator(MaxNLocator(2))
            ax.tick_params(labelsize=6)
        axes[0].set_title("rollout 0: true (solid), predicted (dashed)", fontsize=9)
        axes[-1].set_xlabel("step", fontsize=8)
    fig.tight_layout()
    return fig


def _strip_plot(pred: np.ndarray, true: np.ndarray, shown: int = 4) -> bytes:
    """PNG bytes of :func:`_strip_figure`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _strip_figure(pred, true, shown)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
