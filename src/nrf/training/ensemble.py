"""Reading a trained ensemble (several members trained as one network) member by member:
energies and samples of each member, for evaluation, the command line and estimators."""

from __future__ import annotations

import torch

from nrf.nn.ensemble import ensemble_size, tile
from nrf.objectives import Objective


def members(objective: Objective) -> int:
    """Members trained together by ``objective`` (1 for a plain network)."""
    return ensemble_size(objective.energy)


def check_member(objective: Objective, member: int | None) -> int | None:
    """``member`` checked against the ensemble (None for a plain network); an ensemble
    needs one chosen."""
    m = members(objective)
    if m == 1:
        if member is None or (not isinstance(member, bool) and member == 0):
            return None
        raise ValueError(f"model: this run trained one model; choose 0 or none, got {member!r}")
    if member is None or isinstance(member, bool) or not 0 <= member < m:
        raise ValueError(
            f"model: this run trained {m} models together; choose one in [0, {m}), got {member!r}"
        )
    return member


@torch.no_grad()
def member_energies(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """Energies of ``x`` under every member, shape ``(members, batch)`` (evaluation mode)."""
    m = members(objective)
    return objective.score(tile(x, m)).view(m, x.shape[0])


def member_energy(objective: Objective, x: torch.Tensor, member: int | None = None) -> torch.Tensor:
    """Energies of ``x`` under member ``member`` (any for a plain network), shape ``(batch,)``."""
    index = check_member(objective, member)
    return member_energies(objective, x)[0 if index is None else index]


def member_samples(
    objective: Objective, n: int, member: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` samples of member ``member`` (the objective's own sampling procedure)."""
    index = check_member(objective, member)
    if index is None:
        return objective.sample(n, generator)
    m = members(objective)
    drawn = objective.sample(n * m, generator)
    return drawn.view(m, n, *drawn.shape[1:])[index]
