"""What flows from the data through the training loop into an objective."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch


@dataclass(frozen=True)
class Batch:
    """A batch of training rows: ``x`` (batch first) and, when the data has them, labels
    ``y`` (one per row). Further per-row fields (task ids, weights) extend this class.

    >>> b = Batch(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))
    >>> len(b), b.to("cpu").y.tolist()
    (4, [0, 1, 0, 1])
    """

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.x, torch.Tensor) or self.x.dim() == 0:
            raise TypeError(f"Batch.x must be a tensor with a batch dimension, got {self.x!r}")
        for f in fields(self)[1:]:
            value = getattr(self, f.name)
            if value is not None and (
                not isinstance(value, torch.Tensor) or value.shape[:1] != self.x.shape[:1]
            ):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(
                    f"Batch.{f.name} must have one entry per row of x ({self.x.shape[0]}), got {shape}"
                )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: v.to(device) for k, v in moved.items() if v is not None})

    def select(self, index: torch.Tensor) -> Batch:
        """The rows ``index`` (row numbers, or a boolean mask) of every field."""
        chosen = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: _rows(v, index) for k, v in chosen.items() if v is not None})


def _rows(v: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``v[index]``; row numbers go through ``index_select`` (whole rows copied at once, several
    times faster on CPU than advanced indexing)."""
    index = index.to(v.device)
    if index.dim() == 1 and index.dtype in (torch.int64, torch.int32):
        return v.index_select(0, index)
    return v[index]
