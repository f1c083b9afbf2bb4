"""Pieces shared by the objectives that fit the model's score s(x) = -grad_x E(x) (score
matching) or a density ratio (NCE) and do not sample during training: the score with its
graph, the training data's moments, and sampling by a sampler started at those moments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nrf._checks import check_positive_int
from nrf.nn import evaluation_mode
from nrf.objectives.base import Objective
from nrf.samplers import Sampler, run
from nrf.targets import BoltzmannTarget


def energy_score(energy: nn.Module, x: torch.Tensor, *, create_graph: bool) -> torch.Tensor:
    """s(x) = -grad_x E(x) for each row (the sum of the rows' energies is differentiated, so
    rows must be independent); with ``create_graph`` the result can be differentiated again
    (by the parameters for a loss, or by x for a Hessian-vector product)."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return -grad


class DataMoments(nn.Module):
    """Per-feature mean and standard deviation of the training rows (buffers ``data_mean``
    and ``data_std``, set by :meth:`initialize` and saved with the model), where samplers of
    objectives that never sample during training start their chains."""

    data_mean: torch.Tensor
    data_std: torch.Tensor
    lazy_buffers: tuple[str, ...] = ("data_mean", "data_std")
    """Buffers sized by :meth:`initialize`; a saved model's shapes are taken on loading."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("data_mean", torch.zeros(0))
        self.register_buffer("data_std", torch.zeros(0))

    def initialize(self, data: torch.Tensor) -> None:
        super().initialize(data)  # type: ignore[misc]
        self.data_mean = data.mean(0).detach().clone()
        self.data_std = data.std(0).detach().clone() if data.shape[0] > 1 else torch.ones_like(data[0])

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        for name in self.lazy_buffers:  # sized by initialize: take the saved shape
            saved = state_dict.get(prefix + name)
            if isinstance(saved, torch.Tensor):
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args)

    def moment_starts(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of N(data_mean, diag(data_std^2))."""
        check_positive_int("n", n)
        if self.data_mean.numel() == 0:
            raise RuntimeError("the objective was not initialized on data (its data moments are unset)")
        z = torch.randn((n, *self.data_mean.shape), generator=generator, device=self.data_mean.device)
        return self.data_mean + self.data_std * z.to(self.data_mean.dtype)


class DataStartObjective(DataMoments, Objective):
    """Base of the objectives that never sample while training (score matching, NCE): one
    energy network trained as the ``"energy"`` group, and an optional ``sampler`` that
    :meth:`sample` runs for ``sample_steps`` steps on exp(-E) from the data moments."""

    def __init__(self, energy: nn.Module, sampler: Sampler | None, sample_steps: int) -> None:
        super().__init__()
        self.energy = energy
        self.sampler = sampler
        self.sample_steps = check_positive_int("sample_steps", sample_steps)

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [p for p in self.energy.parameters() if p.requires_grad]}

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``sample_steps`` of the sampler on exp(-E), from N(data mean, data std^2) starts."""
        if self.sampler is None:
            raise TypeError(
                f"the {self.config_name!r} objective was built without a sampler; give one "
                "(e.g. sampler = {name = 'langevin', step_size = 0.01}) to draw samples"
            )
        start = self.moment_starts(n, generator)
        with evaluation_mode(self):
            state, _ = run(self.sampler, BoltzmannTarget(self.energy), self.sampler.init((start,)),
                           self.sample_steps, generator=generator)  # fmt: skip
        return state.position[0].detach()
