"""Several independent small networks evaluated as one (one model per seed).

Training ten seeds of a tiny MLP one after the other on a CPU is dominated by per-operation
overhead; stacking their weights and running them with batched matrix products costs
little more than one. A batched layer holds ``n_models`` independent weight sets and maps
``(n_models, batch, in)`` to ``(n_models, batch, out)``; model ``s`` only ever sees row
block ``s``. Because the parameters of different models never interact, the gradient of
a sum of per-model losses with respect to model ``s``'s parameters is exactly that
model's own gradient, and element-wise optimizers such as Adam then update each model as
if it were trained alone.
"""

from __future__ import annotations

import torch
from torch import nn

from nrf._checks import check_positive_int
from nrf.nn.weight_norm import _WeightNorm


class BatchedLinear(nn.Module):
    """``n_models`` independent linear layers: y[s] = x[s] W[s]^T + b[s]."""

    def __init__(self, n_models: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.n_models = check_positive_int("n_models", n_models)
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        bound = in_features**-0.5  # nn.Linear's default uniform init
        self.weight = nn.Parameter(torch.empty(n_models, out_features, in_features).uniform_(-bound, bound))
        self.bias = (
            nn.Parameter(torch.empty(n_models, out_features).uniform_(-bound, bound)) if bias else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight.transpose(1, 2))
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"n_models={self.n_models}, in_features={self.in_features}, out_features={self.out_features}"


class BatchedWeightNormLinear(_WeightNorm):
    """``n_models`` independent weight-normalized linear layers (data-dependent init per model)."""

    _out_dim = 1

    def __init__(
        self,
        n_models: int,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        scale_trainable: bool = True,
        init_scale: float = 1.0,
        data_init: bool = True,
    ) -> None:
        super().__init__()
        self.n_models = check_positive_int("n_models", n_models)
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        shapes = (n_models, out_features, in_features), (n_models, out_features)
        self._setup(*shapes, bias, scale_trainable, init_scale, data_init)

    def _norm_dims(self) -> list[int]:
        return [2]

    def _unit_shape(self) -> list[int]:
        return [self.n_models, self.out_features, 1]

    def _stat_dims(self, t: torch.Tensor) -> list[int]:
        return [1]  # per model and unit, over that model's batch

    def _apply_weight(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    def extra_repr(self) -> str:
        return f"n_models={self.n_models}, in_features={self.in_features}, out_features={self.out_features}"


class BatchedBatchNorm1d(nn.BatchNorm1d):
    """Batch norm per model: model ``s`` normalizes with the statistics of its own batch.

    Implemented as one ``BatchNorm1d`` over ``n_models * features`` channels, on the input
    laid out as ``(batch, n_models * features)``.
    """

    def __init__(self, n_models: int, num_features: int, **kwargs: object) -> None:
        super().__init__(check_positive_int("n_models", n_models) * num_features, **kwargs)  # type: ignore[arg-type]
        self.n_models = n_models
        self.features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, b, c = x.shape
        flat = x.transpose(0, 1).reshape(b, s * c)
        return super().forward(flat).reshape(b, s, c).transpose(0, 1)


_BATCHED = (BatchedLinear, BatchedWeightNormLinear, BatchedBatchNorm1d)


@torch.no_grad()
def copy_model_slice(batched: nn.Module, single: nn.Module, index: int) -> None:
    """Copy model ``index`` of a batched network into the equivalent plain network.

    The two must list their parametrized layers in the same order (linear and weight-norm
    layers, batch norms); parameters and batch-norm running statistics are copied.
    """
    sources = [m for m in batched.modules() if isinstance(m, _BATCHED)]
    targets = [m for m in single.modules() if isinstance(m, (nn.Linear, _WeightNorm, nn.BatchNorm1d))]
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} batched layers but {len(targets)} plain ones")
    for src, dst in zip(sources, targets, strict=True):
        if isinstance(src, BatchedBatchNorm1d):
            c = src.features
            for name in ("weight", "bias", "running_mean", "running_var"):
                value = getattr(src, name)
                if value is not None:
                    getattr(dst, name).copy_(value.view(src.n_models, c)[index])
            continue
        for name, param in src.named_parameters():
            getattr(dst, name).copy_(param[index])
