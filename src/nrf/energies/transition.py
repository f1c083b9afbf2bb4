"""Transition models of a time series: an energy E(x_{t+1} | context) over the next state
given the past states (and actions), and its feed-forward counterpart, the same layers with
the last one predicting the next state.

Two architectures (``architecture``):

* ``"attention-conv"`` (001_… Fig. 14c): per time step FC 32, a self-attention block over
  the steps (one head, residual: h + Attn(h)), Conv1D 128, Conv1D 128 (kernel 3, same
  padding), then dense -> 1 (the energy) or dense -> d (the predictor). The energy's
  sequence is the c context steps followed by the candidate next state (its action
  features zero); the predictor's is the c context steps.
* ``"mlp"`` (002_… section 5): the flattened context (and the candidate next state for the
  energy) through 3 fully connected layers of 128 units; ``spectral_norm=True`` puts
  spectral normalization on every layer (002_…'s FC baseline, "to prevent multi-step
  explosion").

Both take contexts ``(batch, c, d + a)`` and next states ``(batch, d)``; leaky ReLU (slope
0.2, the papers') between layers, or another of :data:`nrf.nn.ACTIVATIONS` (``activation``;
a smooth one, e.g. ``"silu"``, gives an energy whose input gradient is not piecewise
constant, which denoising score matching of the next state needs).

What a time step feeds the layers (``coordinates``):

* ``"relative"`` (default): its displacement from the last context state s_t divided by
  the per-dimension standard deviation of one step's displacement, (s_k - s_t) / step_std,
  beside the standardized last state (s_t - mean) / std and the step's action; the
  predictor outputs s_t + step_std * (its last layer). The quantity a transition model must
  get right, the next step's displacement, is then of order 1 at the input and output;
* ``"absolute"``: the standardized state (s_k - mean) / std and the action; the predictor
  outputs mean + std * (its last layer).

The statistics are buffers set from training data by :meth:`set_normalization` (identity
until then), so samplers and losses work in the data's own units. The papers do not state
their inputs' scaling.

The predictor is also an energy, the Gaussian one of a feed-forward regression:
E(x | context) = ||x - f(context)||^2 / 2, whose maximum likelihood is the mean squared
error of f; its mode f(context) is the prediction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from nrf._checks import check_bool, check_choice, check_positive_int
from nrf.energies.base import Energy
from nrf.nn import ACTIVATIONS, make_activation

ARCHITECTURES = ("attention-conv", "mlp")
COORDINATES = ("relative", "absolute")


def _linear(n_in: int, n_out: int, spectral: bool) -> nn.Module:
    layer = nn.Linear(n_in, n_out)
    return _spectral_norm(layer) if spectral else layer


class SelfAttention(nn.Module):
    """One-head self-attention over the steps of ``(batch, steps, width)``:
    softmax(Q K^T / sqrt(width)) V, then an output projection. Written out (not
    ``nn.MultiheadAttention``) so that it can be differentiated twice on every device: the
    sampler's input gradient is itself differentiated when training backpropagates through
    the sampling steps."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.scale = width**-0.5

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        w = torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1)
        out: torch.Tensor = self.out(w @ v)
        return out


class AttentionConvTrunk(nn.Module):
    """001_… Fig. 14c without its last layer: ``(batch, steps, features)`` ->
    ``(batch, channels * steps)``."""

    def __init__(
        self,
        in_features: int,
        steps: int,
        width: int = 32,
        channels: int = 128,
        kernel: int = 3,
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, width)
        self.attention = SelfAttention(width)
        self.conv1 = nn.Conv1d(width, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2)
        self.act = make_activation(activation)
        self.out_features: int = channels * steps

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(seq))
        h = (h + self.attention(h)).transpose(1, 2)
        h = self.act(self.conv1(h))
        h = self.act(self.conv2(h))
        return h.flatten(1)


class MLPTrunk(nn.Module):
    """002_…'s 3 x 128 fully connected layers on the flattened input."""

    def __init__(
        self,
        in_features: int,
        hidden: int = 128,
        layers: int = 3,
        spectral: bool = False,
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        n = in_features
        for _ in range(layers):
            mods += [_linear(n, hidden, spectral), make_activation(activation)]
            n = hidden
        self.net = nn.Sequential(*mods)
        self.out_features: int = hidden

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(seq.flatten(1))
        return out


class _TransitionModel(Energy):
    """Shared checks, normalization and trunk construction of the transition models."""

    conditional_on_context = True
    rows_independent = True
    state_mean: torch.Tensor
    state_std: torch.Tensor
    step_std: torch.Tensor
    trunk: AttentionConvTrunk | MLPTrunk

    def __init__(
        self,
        state_dim: int,
        context: int = 3,
        action_dim: int = 0,
        *,
        architecture: str = "attention-conv",
        spectral_norm: bool = False,
        coordinates: str = "relative",
        activation: str = "leaky_relu",
        steps_in: int,
        with_next: bool,
    ) -> None:
        super().__init__()
        self.state_dim = check_positive_int("state_dim", state_dim)
        self.context = check_positive_int("context", context)
        self.action_dim = check_positive_int("action_dim", action_dim, allow_zero=True)
        self.architecture = check_choice("architecture", architecture, ARCHITECTURES)
        self.spectral_norm = check_bool("spectral_norm", spectral_norm)
        if self.spectral_norm and self.architecture != "mlp":
            raise ValueError("spectral_norm: only the 'mlp' architecture has it (002_…'s FC baseline)")
        self.coordinates = check_choice("coordinates", coordinates, COORDINATES)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.event_shape = (self.state_dim,)
        self.register_buffer("state_mean", torch.zeros(self.state_dim))
        self.register_buffer("state_std", torch.ones(self.state_dim))
        self.register_buffer("step_std", torch.ones(self.state_dim))
        relative = self.coordinates == "relative"
        features = (2 if relative else 1) * self.state_dim + self.action_dim
        self.with_next = with_next
        if self.architecture == "attention-conv":
            self.trunk = AttentionConvTrunk(features, steps_in, activation=self.activation)
        else:
            self.trunk = MLPTrunk(
                steps_in * features, spectral=self.spectral_norm, activation=self.activation
            )

    def set_normalization(
        self, mean: torch.Tensor, std: torch.Tensor, step_std: torch.Tensor | None = None
    ) -> None:
        """Standardize states with ``mean`` and ``std`` and scale one step's displacement by
        ``step_std`` (per state dimension, stds > 0; ``step_std`` unchanged when ``None``)."""
        values = {"mean": mean, "std": std, **({} if step_std is None else {"step_std": step_std})}
        flat = {k: torch.as_tensor(v, dtype=self.state_mean.dtype).flatten() for k, v in values.items()}
        for key, v in flat.items():
            if v.shape != (self.state_dim,):
                raise ValueError(
                    f"set_normalization: {key}: expected shape ({self.state_dim},), got {tuple(v.shape)}"
                )
            if not bool(torch.isfinite(v).all()) or (key != "mean" and not bool((v > 0).all())):
                raise ValueError(
                    f"set_normalization: {key} must be finite" + ("" if key == "mean" else " and > 0")
                )
        self.state_mean.copy_(flat["mean"])
        self.state_std.copy_(flat["std"])
        if "step_std" in flat:
            self.step_std.copy_(flat["step_std"])

    def check_context(self, context: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """``context`` as ``(batch, c, d + a)``, or a clear error."""
        want = (self.context, self.state_dim + self.action_dim)
        if not isinstance(context, torch.Tensor) or context.dim() != 3 or tuple(context.shape[1:]) != want:
            shape = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
            raise ValueError(f"context: expected shape (batch, {want[0]}, {want[1]}), got {shape}")
        if rows is not None and context.shape[0] != rows:
            raise ValueError(f"context: expected {rows} rows (one per next state), got {context.shape[0]}")
        return context

    def last_state(self, context: torch.Tensor) -> torch.Tensor:
        """The context's last state s_t ``(batch, d)``."""
        return context[:, -1, : self.state_dim]

    def features(self, context: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """The per-step features ``(batch, steps, f)`` of the context steps (and of the
        candidate next state ``x``, its action features zero), by ``coordinates``."""
        states = context[..., : self.state_dim]
        actions = context[..., self.state_dim :]
        if x is not None:
            states = torch.cat([states, x[:, None]], dim=1)
            actions = torch.cat([actions, actions.new_zeros(actions.shape[0], 1, actions.shape[2])], dim=1)
        if self.coordinates == "absolute":
            parts = [(states - self.state_mean) / self.state_std]
        else:
            last = self.last_state(context)[:, None]
            here = ((last - self.state_mean) / self.state_std).expand_as(states)
            parts = [(states - last) / self.step_std, here]
        return torch.cat([*parts, actions], dim=-1) if self.action_dim else torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise TypeError(
            f"{type(self).__name__} is a conditional energy E(x | context): call "
            "class_energy(x, context), or wrap it with ConditionedEnergy(model, context)"
        )

    def hyperparameters(self) -> dict[str, Any]:
        return {"state_dim": self.state_dim, "context": self.context, "action_dim": self.action_dim,
                "architecture": self.architecture, "spectral_norm": self.spectral_norm,
                "coordinates": self.coordinates, "activation": self.activation}  # fmt: skip


class TransitionEnergy(_TransitionModel):
    """E(x_{t+1} | context): the energy of the next state (``class_energy(x, context)``,
    lower = more probable), by ``architecture`` (see the module docstring).

    >>> e = TransitionEnergy(2)
    >>> e.class_energy(torch.zeros(5, 2), torch.zeros(5, 3, 2)).shape
    torch.Size([5])
    """

    def __init__(
        self,
        state_dim: int,
        context: int = 3,
        action_dim: int = 0,
        *,
        architecture: str = "attention-conv",
        spectral_norm: bool = False,
        coordinates: str = "relative",
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__(state_dim, context, action_dim, architecture=architecture,
                         spectral_norm=spectral_norm, coordinates=coordinates,
                         activation=activation, steps_in=context + 1, with_next=True)  # fmt: skip
        self.head = _linear(self.trunk.out_features, 1, self.spectral_norm)

    def class_energy(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self._flat_batch(x)
        seq = self.features(self.check_context(context, x.shape[0]), x)
        out: torch.Tensor = self.head(self.trunk(seq)).squeeze(-1)
        return out


class TransitionPredictor(_TransitionModel):
    """The feed-forward model f(context) -> x_{t+1} of the same layers (``predict``), as the
    Gaussian energy E(x | context) = ||x - f(context)||^2 / 2 (``class_energy``).

    >>> f = TransitionPredictor(2, architecture="mlp", spectral_norm=True)
    >>> f.predict(torch.zeros(4, 3, 2)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        state_dim: int,
        context: int = 3,
        action_dim: int = 0,
        *,
        architecture: str = "attention-conv",
        spectral_norm: bool = False,
        coordinates: str = "relative",
        activation: str = "leaky_relu",
    ) -> None:
        super().__init__(state_dim, context, action_dim, architecture=architecture,
                         spectral_norm=spectral_norm, coordinates=coordinates,
                         activation=activation, steps_in=context, with_next=False)  # fmt: skip
        self.head = _linear(self.trunk.out_features, self.state_dim, self.spectral_norm)

    def predict(self, context: torch.Tensor) -> torch.Tensor:
        """f(context): the predicted next states ``(batch, d)`` in the data's units."""
        context = self.check_context(context)
        z: torch.Tensor = self.head(self.trunk(self.features(context)))
        if self.coordinates == "absolute":
            return z * self.state_std + self.state_mean
        return self.last_state(context) + z * self.step_std

    def class_energy(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self._flat_batch(x)
        self.check_context(context, x.shape[0])
        return 0.5 * (x - self.predict(context)).pow(2).sum(1)
