"""The layout of a run directory, in one place: the trainer writes it, evaluators put their
figures into it, and the report, ``nrf sample`` / ``score`` and ``load_run`` read it.

    runs/<name>/
      config.toml                 the resolved config
      metrics.jsonl               one JSON object per line ("phase": train | eval | event)
      summary.json                status, step, final metrics, wall time
      checkpoints/step-XXXXXXXX/  step checkpoints; checkpoints/best/ the best by a metric
      plots/<kind>-stepXXXXXXXX.png
      report.html                 written by ``nrf report``
      tensorboard/                TensorBoard events (when installed)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_PLOT = re.compile(r"^(?P<kind>.+?)-step(?P<step>\d+)$")


@dataclass(frozen=True)
class RunDir:
    """Paths of the run directory ``root``.

    >>> run = RunDir(Path("runs/demo"))
    >>> run.plot("samples", 500).name
    'samples-step00000500.png'
    >>> RunDir.plot_kind_and_step(run.plot("samples", 500))
    ('samples', 500)
    """

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path))

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    def plot(self, kind: str, step: int) -> Path:
        """The figure of ``kind`` (``"density"``, ``"samples"``, ...) at ``step``."""
        return self.plots / f"{kind}-step{step:08d}.png"

    @staticmethod
    def plot_kind_and_step(path: Path) -> tuple[str, int | None]:
        """``(kind, step)`` of a figure written by :meth:`plot` (``(stem, None)`` for others)."""
        match = _PLOT.match(path.stem)
        return (match["kind"], int(match["step"])) if match else (path.stem, None)
