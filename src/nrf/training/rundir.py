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
# Everything a run writes at the top of its folder (the lock and the summary's temp file
# included); a name outside this set is not the run's.
RUN_ENTRIES = frozenset(
    {"config.toml", "metrics.jsonl", "summary.json", "summary.json.tmp", "checkpoints", "plots",
     "report.html", "tensorboard", ".lock"}
)  # fmt: skip


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

    def foreign_entries(self) -> list[str]:
        """Names at the top of the folder that no run wrote (sorted; ``[]`` when the folder
        is missing, empty or holds a run's files only)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not _written_by_run(p.name))

    def holds_run(self) -> bool:
        """Whether the folder holds a run's config (an earlier run, finished or not)."""
        return self.config.is_file()

    def remove_run(self) -> None:
        """Delete the run's files, and only them; refuses a folder holding anything else.

        The caller holds the folder's lock (``.lock`` is kept): another process must not
        write the run while it is removed.
        """
        foreign = self.foreign_entries()
        if foreign:
            raise FileExistsError(
                f"{self.root}: holds files no run wrote ({', '.join(foreign[:5])}); not removing it"
            )
        import shutil

        for path in self.root.iterdir():
            if path.name == ".lock":
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def plot(self, kind: str, step: int) -> Path:
        """The figure of ``kind`` (``"density"``, ``"samples"``, ...) at ``step``."""
        return self.plots / f"{kind}-step{step:08d}.png"

    @staticmethod
    def plot_kind_and_step(path: Path) -> tuple[str, int | None]:
        """``(kind, step)`` of a figure written by :meth:`plot` (``(stem, None)`` for others)."""
        match = _PLOT.match(path.stem)
        return (match["kind"], int(match["step"])) if match else (path.stem, None)


def _written_by_run(name: str) -> bool:
    """A run's entry, or the temporary file of one of its atomic writes (``.report.html.*``)."""
    if name in RUN_ENTRIES:
        return True
    return name.startswith(".") and any(name.startswith(f".{entry}.") for entry in RUN_ENTRIES)
