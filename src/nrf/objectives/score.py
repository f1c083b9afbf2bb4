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
from nrf.samplers import run
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


def langevin_samples(objective: Any, n: int, steps: int, generator: torch.Generator | None) -> torch.Tensor:
    """``steps`` transitions of ``objective.sampler`` on exp(-E) from :meth:`DataMoments.moment_starts`."""
    if objective.sampler is None:
        raise TypeError(
            f"the {objective.config_name!r} objective was built without a sampler; give one "
            "(e.g. sampler = {name = 'langevin', step_size = 0.01}) to draw samples"
        )
    start = objective.moment_starts(n, generator)
    with evaluation_mode(objective):
        state, _ = run(
            objective.sampler, BoltzmannTarget(objective.energy), objective.sampler.init((start,)), steps,
            generator=generator,
        )  # fmt: skip
    return state.position[0].detach()
