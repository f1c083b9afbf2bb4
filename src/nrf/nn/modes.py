"""Switching a module's training mode for a block of code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in evaluation mode inside the block (dropout off, batch-norm statistics
    and spectral normalization's power iteration frozen), its own mode restored after,
    also when the block raises.

    >>> net = nn.Dropout(0.5)
    >>> with evaluation_mode(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
