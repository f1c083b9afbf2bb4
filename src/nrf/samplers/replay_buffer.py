"""The replay buffer of IGEBM (Du & Mordatch, 2019, Algorithm 1).

Persistent chains without one chain per data point: negative samples start from past
samples kept in a buffer, except for a fraction (5 %) that restart from a fresh
initialization (uniform noise for images), which keeps the chains mixing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from nrf._checks import check_positive_int, check_probability

InitFn = Callable[[int, torch.Generator | None], torch.Tensor]


class ReplayBuffer:
    """A ring buffer of samples with re-initialization.

    Parameters
    ----------
    capacity:
        Maximum number of stored samples (IGEBM: 10,000); the oldest are overwritten.
    init:
        ``init(n, generator) -> Tensor[n, ...]`` draws fresh starting points.
    reinit_prob:
        Probability that a drawn sample is replaced by a fresh one (IGEBM: 0.05).

    >>> buf = ReplayBuffer(100, lambda n, g: torch.rand(n, 2, generator=g))
    >>> x = buf.sample(8, torch.Generator().manual_seed(0))   # empty buffer: all fresh
    >>> buf.push(x)
    >>> len(buf)
    8
    """

    def __init__(self, capacity: int, init: InitFn, reinit_prob: float = 0.05) -> None:
        self.capacity = check_positive_int("capacity", capacity)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        self.init = init
        self._data: torch.Tensor | None = None
        self._size = 0
        self._next = 0

    def __len__(self) -> int:
        return self._size

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` starting points: stored samples drawn uniformly (with replacement), each
        replaced by a fresh ``init`` draw with probability ``reinit_prob``; all fresh while
        the buffer is empty."""
        check_positive_int("n", n)
        fresh = self.init(n, generator)
        if self._data is None or self._size == 0:
            return fresh
        if tuple(fresh.shape[1:]) != tuple(self._data.shape[1:]):
            raise ValueError(
                f"init returned samples of shape {tuple(fresh.shape[1:])}, "
                f"buffer holds {tuple(self._data.shape[1:])}"
            )
        idx = torch.randint(self._size, (n,), generator=generator, device=torch.device("cpu"))
        stored = self._data[idx.to(self._data.device)].to(fresh.device, fresh.dtype)
        u = torch.rand(n, generator=generator, device=torch.device("cpu")).to(fresh.device)
        keep_fresh = (u < self.reinit_prob).view(-1, *([1] * (fresh.dim() - 1)))
        return torch.where(keep_fresh, fresh, stored)

    def contents(self, n: int | None = None) -> torch.Tensor:
        """A copy of the ``n`` most recently stored samples (all when ``None``), newest last."""
        if self._data is None or self._size == 0:
            raise ValueError("the replay buffer is empty")
        n = self._size if n is None else min(check_positive_int("n", n), self._size)
        order = (torch.arange(self._size - n, self._size) + self._next - self._size) % self.capacity
        return self._data[order.to(self._data.device)].clone()

    def push(self, samples: torch.Tensor) -> None:
        """Store ``samples`` (detached), overwriting the oldest when full."""
        x = samples.detach()
        if x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"samples must be a non-empty batch, got shape {tuple(samples.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("samples pushed to the replay buffer hold non-finite values")
        if self._data is None:
            self._data = torch.empty((self.capacity, *x.shape[1:]), dtype=x.dtype, device=x.device)
        elif tuple(x.shape[1:]) != tuple(self._data.shape[1:]):
            raise ValueError(
                f"samples of shape {tuple(x.shape[1:])} do not fit a buffer of {tuple(self._data.shape[1:])}"
            )
        x = x[-self.capacity :]
        n = x.shape[0]
        pos = (torch.arange(n) + self._next) % self.capacity
        self._data[pos.to(self._data.device)] = x.to(self._data.dtype)
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def state_dict(self) -> dict[str, Any]:
        """Stored samples and counters (tensors and ints only, for safetensors / JSON)."""
        out: dict[str, Any] = {"capacity": self.capacity, "size": self._size, "next": self._next,
                               "reinit_prob": self.reinit_prob}  # fmt: skip
        if self._data is not None:
            out["data"] = self._data[: self._size].clone()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a buffer written by :meth:`state_dict` (same capacity)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"state_dict capacity {state['capacity']} differs from this buffer's {self.capacity}"
            )
        size = int(state["size"])
        self.reinit_prob = float(state["reinit_prob"])
        self._size, self._next = size, int(state["next"])
        if size == 0:
            self._data = None
            return
        data = state["data"]
        if data.shape[0] != size:
            raise ValueError(f"state_dict holds {data.shape[0]} samples but size says {size}")
        self._data = torch.empty((self.capacity, *data.shape[1:]), dtype=data.dtype, device=data.device)
        self._data[:size] = data
