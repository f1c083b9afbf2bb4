"""The layout of ensembles: independently initialized members trained as one network.

An ensemble network (for example :class:`~nrf.energies.BatchedMLPEnergy`, whose batched
layers hold one weight set per member) takes one flat batch of ``members * b`` rows; rows
``s*b .. (s+1)*b - 1`` belong to member ``s``, which never sees the others' rows. A
plain network is an ensemble of one. Objectives never look at this layout: the training
loop gives each member its own rows and data order and sums the members' mean losses
(see :mod:`nrf.training.loop`); these helpers are the only place that reads it.

Batched layers were chosen over ``torch.func.stack_module_state`` + ``vmap``: on the
2-100-100-1 potential with 10 members the input-gradient of a vmapped network cost 1.4-1.5x
the batched layers' (docs/experiments/ensembles.md).
"""

from __future__ import annotations

import torch
from torch import nn


def ensemble_size(module: nn.Module) -> int:
    """Members of an ensemble network (1 for a plain network)."""
    return int(getattr(module, "n_models", 1))


def tile(x: torch.Tensor, members: int) -> torch.Tensor:
    """``x`` once per member, stacked along the batch (the layout ensemble networks expect)."""
    if members == 1:
        return x
    return x.repeat(members, *([1] * (x.dim() - 1)))


def rows_per_member(module: nn.Module, rows: int) -> int:
    """Rows of each member in a flat batch of ``rows`` rows."""
    members = ensemble_size(module)
    if rows % members:
        raise ValueError(f"a batch of {rows} rows does not split into {members} ensemble members")
    return rows // members


def batch_norm_log_scales(module: nn.Module) -> torch.Tensor:
    """sum_k log(gamma_k^2) over the batch-norm scales of ``module``, per member (the mean
    over the members of an ensemble): Kim & Bengio's entropy surrogate of a generator."""
    total = torch.zeros(())
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            total = total + torch.log(m.weight.pow(2)).sum() / int(getattr(m, "n_models", 1))
    return total
