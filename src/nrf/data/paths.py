"""Where nrf looks for data files.

Order: the explicit ``root`` argument, then ``$NRF_DATA_DIR``, then ``~/.cache/nrf``.
Inside a root, a data set's files are looked up in ``<root>/<subdir>/`` and then
directly in ``<root>/`` (so ``root`` may also point at the data set's own folder).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from nrf.data.errors import DataNotFoundError

ENV_VAR = "NRF_DATA_DIR"


def default_cache_dir() -> Path:
    """``~/.cache/nrf`` (``$XDG_CACHE_HOME/nrf`` when that is set)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nrf"


def data_roots(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The roots searched, in order, without duplicates."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env).expanduser())
    roots.append(default_cache_dir())
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique


def download_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where ``nrf data download`` writes: ``root``, else ``$NRF_DATA_DIR``, else the cache."""
    return data_roots(root)[0]


def find_file(
    dataset: str,
    subdir: str,
    names: Sequence[str],
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the first existing ``<root>/<subdir>/<name>`` or ``<root>/<name>``.

    ``names`` are alternatives tried in order for each place (e.g. the gzip and the raw
    file). Raises :class:`DataNotFoundError` listing every path tried.
    """
    tried: list[Path] = []
    for base in data_roots(root):
        for folder in (base / subdir, base):
            for name in names:
                path = folder / name
                tried.append(path)
                if path.is_file():
                    return path
    hint = (
        f"Point nrf at the data with root=... or ${ENV_VAR}, or fetch it with `nrf data download {dataset}`."
    )
    raise DataNotFoundError(dataset, names[0], tried, hint)
