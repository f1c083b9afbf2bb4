"""Contrastive training of a transition energy E(x_{t+1} | context) with short-run
negatives that are differentiated through (IGEBM's time-series models, 001_… sections 5.1
and 8.6; 002_… section 5).

Per batch of (context c, next state x+), chains start at the context's last state
(``start = "last"``; ``"noise"``: that state plus start_noise * S w, w ~ N(0, I)) and run K steps of
one of two proposals (001_… Eqs. 4 and 5) on E(. | c):

* ``"langevin"``:  x_k = x'_{k-1} - step_size * P clip(grad_x E(x'_{k-1} | c)),
  x'_{k-1} = x_{k-1} + noise * S w_k, w_k ~ N(0, I) (the noise added before each gradient
  step, as in the authors' code);
* ``"mppi"``:  x_k = sum_i s_i x_{k,i},  x_{k,i} = x_{k-1} + mppi_sigma * S w_{k,i},
  s = softmax_i(-E(x_{k,i} | c)),  i = 1..mppi_samples.

With ``precondition`` (default) S = diag(step_std), the standard deviation of one step's
displacement in the training data per state dimension, and P = S^2: the chains then move
in the network's displacement coordinates (x - s_t) / step_std (see
:mod:`nrf.energies.transition`), so that one setting suits states of any scale, and every
dimension of a state alike; ``noise`` and ``mppi_sigma`` are fractions of one step's
spread. Without it S = P = I (the data's own units). 001_… gives noise 0.005 in the units
of its data, which it does not state.

With x- = Ω(x_K) (Ω: stop-gradient) the loss is

    L = contrast_weight * L_contrast + dsm_weight * L_dsm,
    L_contrast = mean E(x+ | c) - mean E(x- | c) + alpha (mean E(x+ | c)^2 + mean E(x- | c)^2)
                 + kl_weight * L_grad,

and ``backprop`` says how the sampling steps enter the gradient (001_… section 8.6:
"we backpropagate through the sampling procedure" instead of spectral normalization):

* ``"kl"`` (default; the sampling loss of 001_… Eq. 6 / 9, as in the authors' code):
  L_grad = mean E_Ω(θ)(x_K(θ) | c), the last ``backprop_steps`` steps (all by default)
  differentiated with respect to θ while the energy scoring x_K is held fixed: the
  landscape is moved so that the chains reach low energy;
* ``"full"``: the negative term itself is differentiated through the chains,
  - mean E(x_K(θ) | c) (both paths), and L_grad = 0;
* ``"none"``: chains without a graph, L_grad = 0.

L_dsm (``dsm_weight`` > 0; 0, the papers' objective, by default) is denoising score
matching of the next state in the chains' coordinates u = x / S: with
x~ = x+ + dsm_sigma * S eps, eps ~ N(0, I),

    L_dsm = 1/2 dsm_sigma^2 mean | S grad_x E(x~ | c) - eps / dsm_sigma |^2,

whose minimizer for a deterministic transition is the bowl
E(x | c) = |(x - x+) / S|^2 / (2 dsm_sigma^2) + const: its minimum is the next state and a
Langevin step of size step_size shrinks the distance to it by the factor
1 - step_size / dsm_sigma^2. With ``contrast_weight`` 0 no chains are run in training and
the energy is fitted by L_dsm alone (a denoising score-matching energy of the next state,
sampled by the same chains for predictions).

The model's prediction of the next state (:meth:`predict`, used for rollouts) is the end
of the same chain, started at the context's last state, with ``predict_steps`` steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nrf._checks import check_bool, check_choice, check_positive, check_positive_int
from nrf.data.batch import Batch
from nrf.energies.compose import ConditionedEnergy
from nrf.nn import evaluation_mode
from nrf.objectives.base import OBJECTIVES, Objective, StepContext
from nrf.objectives.denoising_score_matching import denoising_loss
from nrf.samplers.base import noise_like
from nrf.samplers.langevin import clip_gradient, langevin_update
from nrf.samplers.mppi import mppi_update

PROPOSALS = ("langevin", "mppi")
BACKPROP = ("kl", "full", "none")
STARTS = ("last", "noise")


def context_of(batch: Batch, method: str) -> torch.Tensor:
    """The batch's contexts (its ``y``: ``(batch, c, d + a)`` floats), or a clear error."""
    c = batch.y
    if c is None or not torch.is_floating_point(c) or c.dim() != 3:
        got = "none" if c is None else f"{c.dtype} of shape {tuple(c.shape)}"
        raise ValueError(
            f"the {method!r} objective needs transition data: rows x = next states and y = "
            f"float contexts (batch, c, d + a), got y {got}"
        )
    return c


def check_transition_model(energy: nn.Module, method: str) -> Any:
    if not getattr(energy, "conditional_on_context", False):
        raise TypeError(
            f"the {method!r} objective needs a transition model (TransitionEnergy or "
            f"TransitionPredictor), got {type(energy).__name__}"
        )
    return energy


def set_state_normalization(energy: Any, batch: Batch) -> None:
    """The model's input statistics from transition rows: the mean and std of the next
    states and the std of one step's displacement (next state minus the context's last);
    a std below 1e-3 of the largest one (a state that hardly moves) is raised to that
    floor."""
    context = context_of(batch, "transition")
    x = batch.x.double()
    step = x - context[:, -1, : x.shape[1]].double()

    def floored(v: torch.Tensor) -> torch.Tensor:
        return v.clamp_min(1e-3 * float(v.max().clamp_min(1e-12)))

    energy.set_normalization(x.mean(0), floored(x.std(0)), floored(step.std(0)))


@OBJECTIVES.register("transition-ebm", context=("energy",))
class TransitionEBM(Objective):
    """Contrastive training of a transition energy (see the module docstring).

    Parameters
    ----------
    energy:
        A :class:`~nrf.energies.TransitionEnergy`.
    proposal:
        ``"langevin"`` or ``"mppi"``.
    steps:
        K, the proposal's steps (default 20 for Langevin, 30 for MPPI: 001_… section 8.6).
    step_size:
        Langevin's step on the energy gradient.
    noise:
        Langevin's noise standard deviation (0.005, 001_… section 8.6), in units of S.
    mppi_samples, mppi_sigma:
        MPPI's perturbations per step (5, 001_… section 8.6) and their standard deviation
        in units of S (0.1: 30 steps then move a chain by up to 3 steps' spread).
    grad_clip:
        Element-wise clip of the Langevin gradient (``None``: none).
    precondition:
        Scale the proposals by the energy's ``step_std`` (S and P above).
    alpha:
        Weight of the energy-magnitude penalty.
    backprop, backprop_steps, kl_weight:
        How the chains enter the gradient (see the module docstring); ``backprop_steps``
        ``None`` differentiates every step.
    start, start_noise:
        Where the training chains start (see the module docstring); ``start_noise`` is in
        units of S. Predictions start at the last state.
    predict_steps:
        Steps of :meth:`predict` (default ``steps``).
    dsm_weight, dsm_sigma:
        Weight of the denoising score-matching term L_dsm (0: none) and its noise level in
        units of S (see the module docstring).
    contrast_weight:
        Weight of the contrastive part L_contrast (0: no training chains; then
        ``dsm_weight`` must be positive).
    """

    def __init__(
        self,
        energy: nn.Module,
        *,
        proposal: str = "langevin",
        steps: int | None = None,
        step_size: float = 0.1,
        noise: float = 0.005,
        mppi_samples: int = 5,
        mppi_sigma: float = 0.1,
        grad_clip: float | None = None,
        precondition: bool = True,
        alpha: float = 1.0,
        backprop: str = "kl",
        backprop_steps: int | None = None,
        kl_weight: float = 1.0,
        start: str = "last",
        start_noise: float = 0.0,
        predict_steps: int | None = None,
        dsm_weight: float = 0.0,
        dsm_sigma: float = 0.5,
        contrast_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.energy = check_transition_model(energy, "transition-ebm")
        self.proposal = check_choice("proposal", proposal, PROPOSALS)
        default_steps = 20 if proposal == "langevin" else 30
        self.steps = check_positive_int("steps", default_steps if steps is None else steps)
        self.step_size = check_positive("step_size", step_size)
        self.noise = check_positive("noise", noise, allow_zero=True)
        self.mppi_samples = check_positive_int("mppi_samples", mppi_samples)
        self.mppi_sigma = check_positive("mppi_sigma", mppi_sigma)
        self.grad_clip = None if grad_clip is None else check_positive("grad_clip", grad_clip)
        self.precondition = check_bool("precondition", precondition)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        self.backprop = check_choice("backprop", backprop, BACKPROP)
        self.backprop_steps = (
            None if backprop_steps is None else check_positive_int("backprop_steps", backprop_steps)
        )
        if self.backprop_steps is not None and self.backprop_steps > self.steps:
            raise ValueError(f"backprop_steps ({self.backprop_steps}) must not exceed steps ({self.steps})")
        self.kl_weight = check_positive("kl_weight", kl_weight, allow_zero=True)
        self.start = check_choice("start", start, STARTS)
        self.start_noise = check_positive("start_noise", start_noise, allow_zero=True)
        self.predict_steps = (
            None if predict_steps is None else check_positive_int("predict_steps", predict_steps)
        )
        self.dsm_weight = check_positive("dsm_weight", dsm_weight, allow_zero=True)
        self.dsm_sigma = check_positive("dsm_sigma", dsm_sigma)
        self.contrast_weight = check_positive("contrast_weight", contrast_weight, allow_zero=True)
        if self.contrast_weight == 0 and self.dsm_weight == 0:
            raise ValueError("contrast_weight and dsm_weight are both 0: the loss would be empty")

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [p for p in self.energy.parameters() if p.requires_grad]}

    def initialize_batch(self, batch: Batch) -> None:
        set_state_normalization(self.energy, batch)

    def scale(self) -> torch.Tensor:
        """S: the energy's ``step_std`` with ``precondition``, else ones."""
        model: Any = self.energy
        std: torch.Tensor = model.step_std
        return std if self.precondition else torch.ones_like(std)

    def starts(
        self, context: torch.Tensor, generator: torch.Generator | None, *, noisy: bool = True
    ) -> torch.Tensor:
        """Chain starts for ``context``: its last state, plus start noise (in units of S)
        for ``start = "noise"`` when ``noisy``."""
        model: Any = self.energy
        x = context[:, -1, : model.state_dim].clone()
        if noisy and self.start == "noise" and self.start_noise > 0:
            x = x + self.start_noise * self.scale() * noise_like(x, generator)
        return x

    def chain(
        self,
        energy: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        steps: int,
        generator: torch.Generator | None,
        graph_from: int | None,
    ) -> torch.Tensor:
        """``steps`` proposal steps on ``energy`` from ``x``; steps from index ``graph_from``
        on keep their graph (the result a differentiable function of the parameters),
        ``None``: no graph at all."""
        x = x.detach()
        scale = self.scale()
        for k in range(steps):
            graph = graph_from is not None and k >= graph_from
            if self.proposal == "langevin":
                if self.noise:
                    x = x + self.noise * scale * noise_like(x, generator)
                with torch.enable_grad():
                    if not x.requires_grad:
                        x = x.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(-energy(x).sum(), x, create_graph=graph)
                grad = clip_gradient(grad, self.grad_clip) * scale.pow(2)
                x = langevin_update(x, grad, self.step_size, None, 0.0)
            else:
                eta = torch.randn(
                    (self.mppi_samples, *x.shape), generator=generator, dtype=x.dtype, device=x.device
                )
                candidates = x.unsqueeze(0) + self.mppi_sigma * scale * eta
                with torch.set_grad_enabled(graph):
                    logp = -energy(candidates.flatten(0, 1)).view(self.mppi_samples, -1)
                x = mppi_update(candidates, logp)
            if not graph:
                x = x.detach()
        return x

    def contrastive_loss(
        self,
        conditioned: ConditionedEnergy,
        context: torch.Tensor,
        x_pos: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The contrastive part of L (the chains' negatives, the alpha penalty and the path
        through the chains chosen by ``backprop``) and its metrics."""
        start = self.starts(context, generator)
        graph_from = None
        if self.backprop != "none":
            graph_from = self.steps - (self.backprop_steps or self.steps)
        sampled = _ConditionedRepeat(
            self.energy, context, self.mppi_samples if self.proposal == "mppi" else 1
        )
        with evaluation_mode(self.energy):
            x_chain = self.chain(sampled, start, self.steps, generator, graph_from)
        x_neg = x_chain.detach()
        e_pos = conditioned(x_pos)
        e_neg = conditioned(x_neg)
        loss = e_pos.mean() - e_neg.mean() + self.alpha * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        metrics = {
            "energy_data": float(e_pos.detach().mean()),
            "energy_samples": float(e_neg.detach().mean()),
            "sample_error": float((x_neg - x_pos).pow(2).sum(1).mean()),
        }
        if self.backprop == "full":
            loss = loss + e_neg.mean() - conditioned(x_chain).mean()
        elif self.backprop == "kl" and self.kl_weight > 0:
            frozen = {name: p.detach() for name, p in conditioned.named_parameters()}
            kl = functional_call(conditioned, frozen, (x_chain,)).mean()
            loss = loss + self.kl_weight * kl
            metrics["loss_kl"] = float(kl.detach())
        return loss, metrics

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        context = context_of(batch, "transition-ebm")
        x_pos = batch.x
        conditioned = ConditionedEnergy(self.energy, context)
        loss = x_pos.new_zeros(())
        metrics: dict[str, float] = {}
        if self.contrast_weight > 0:
            contrast, metrics = self.contrastive_loss(conditioned, context, x_pos, ctx.generator)
            loss = loss + self.contrast_weight * contrast
        if self.dsm_weight > 0:
            levels = x_pos.new_full((x_pos.shape[0],), self.dsm_sigma)
            eps = noise_like(x_pos, ctx.generator)
            dsm = denoising_loss(conditioned, x_pos, eps, levels, self.dsm_sigma, self.scale())
            loss = loss + self.dsm_weight * dsm
            metrics["loss_dsm"] = float(dsm.detach())
        ctx.update("energy", loss)
        return {"loss": float(loss.detach()), **metrics}

    @torch.no_grad()
    def predict(self, context: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The next states for ``context`` ``(batch, c, d + a)``: the end of a proposal chain
        from its last state (``predict_steps`` steps), in evaluation mode."""
        model: Any = self.energy
        model.check_context(context)
        sampled = _ConditionedRepeat(
            self.energy, context, self.mppi_samples if self.proposal == "mppi" else 1
        )
        with evaluation_mode(self.energy):
            start = self.starts(context, generator, noisy=False)
            return self.chain(sampled, start, self.predict_steps or self.steps, generator, None)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise TypeError(
            "a transition energy draws next states given a context: use predict(context) or "
            "nrf.applications.trajectories.rollout"
        )


class _ConditionedRepeat(nn.Module):
    """E(x | c) for chains of ``repeats`` candidates per context (MPPI's perturbations laid
    out candidate-major, ``(repeats * batch, d)``)."""

    def __init__(self, energy: Any, context: torch.Tensor, repeats: int) -> None:
        super().__init__()
        self.energy = energy
        self.context = context.repeat(repeats, 1, 1) if repeats > 1 else context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.energy.class_energy(x, self.context)
        return out
