"""IGEBM training (Du & Mordatch 2019, 002_… Algorithm 1; the workshop version 001_…):
maximum likelihood with Langevin negatives from a replay buffer, an energy-magnitude
penalty, and the optional sampling (KL) loss.

Per update, with data x+ (plus ``data_noise`` N(0, I)) and K sampler steps from starts
drawn from the replay buffer (95 %) or uniform noise (5 %), giving negatives x- = Ω(x~K)
(Ω: stop-gradient), the loss is

    L = L_ML + alpha (mean E(x+)^2 + mean E(x-)^2) + kl_weight L_KL,

with ``loss`` choosing L_ML:

* ``"ml"`` (002_… Algorithm 1, 001_… Eq. 3):  mean E(x+) - mean E(x-);
* ``"softmax"`` (001_… Eq. 8):  mean E(x+) - sum_i Ω(w_i) E(x-_i),  w = softmax(-E(x-));
* ``"logsumexp"`` (001_… Eq. 2):  mean E(x+) + log mean_i exp(-E(x-_i)), the same gradient as
  ``"softmax"`` with the loss's own value.

The sampling loss (001_… Eq. 6 / 9), L_KL = mean E_Ω(θ)(x~K), differentiates the last
``kl_steps`` Langevin steps with respect to θ (x~K as a function of the parameters through
the gradients of those steps) while the energy that scores x~K is held fixed: it moves the
landscape so that the sampler's short chains reach low energy. The chains are run with the
energy in evaluation mode (spectral normalization's power iteration and dropout frozen), as
the EBM tutorial does. MPPI negatives (001_… Eq. 5) are the ``mppi`` sampler; every other
option is the :class:`~nrf.objectives.ContrastiveDivergence` one.

Historical ensembles (001_… Table 3b, 002_… section 4.1): with ``ensemble = m`` the
objective keeps the parameters of the last m snapshots, taken every ``ensemble_every``
updates, and :meth:`sample` draws from them jointly: ``ensemble_mode = "mean"`` samples the
snapshots' mean energy (1/m) sum_j E_j(x) (one reading of the papers' "sampling and
evaluating on ensembles"); ``"cycle"`` moves the chains under each snapshot's energy in
turn, the steps split between them (what the authors' sampling code does). Training itself
is unchanged.

Conditional models (``conditional=True``, registered as ``igebm-conditional``; 002_…
section 4): a class energy E(x, y) trained on labelled data with every energy conditioned on
the batch's labels, L_ML = mean E(x+, y) - mean E(x-, y), the negatives x- drawn by chains
that follow E(., y) from the shared replay buffer (so buffered images of one class are
carried to another, as in IGEBM's code). Classification is the class of lowest E(x, y).
That gradient is the one of sum_y log Z_y: each class is normalized by itself.
``conditional_negatives = "joint"`` trains the joint density p(x, y) ∝ exp(-E(x, y))
instead: a chain's start x (from the buffer or noise) gets a label y- ~ p(y | x) =
softmax(-E(x, .)) (a Gibbs step), K sampler steps on E(., y-) move x to x- (they keep
p(x, y) invariant, so (x-, y-) is a sample of the joint when the start is), and

    L_ML = mean E(x+, y+) - mean E(x-, y-).

Its gradient estimates that of log sum_y Z_y, and with E(x) = -log sum_y exp(-E(x, y)) and
E(x+, y+) = CE(x+, y+) + E(x+) it is JEM's loss (cross-entropy plus the marginal's maximum
likelihood) with the marginal sampled through the labels: one class per chain step
instead of all of them. ``classifier_weight = w > 0`` adds w CE(-E(x+, .), y+), the
cross-entropy of the labels under p(y | x+) on the data rows (all classes per image, one
pass over the n x C pairs): the normalizer over classes evaluated at the data, which the
sampled negatives estimate only where the chains are.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nrf._checks import check_bool, check_choice, check_positive, check_positive_int
from nrf.data.batch import Batch
from nrf.energies.compose import ConditionedEnergy, SumEnergy
from nrf.nn import evaluation_mode
from nrf.objectives.base import OBJECTIVES, StepContext, paired_energies
from nrf.objectives.classifier import check_class_energy, class_cross_entropy, labels_of
from nrf.objectives.contrastive_divergence import ContrastiveDivergence
from nrf.samplers import ChainState, Langevin, Sampler, run
from nrf.samplers.base import noise_like
from nrf.samplers.langevin import clip_gradient, langevin_update
from nrf.targets import BoltzmannTarget, Target

LOSSES = ("ml", "softmax", "logsumexp")
ENSEMBLE_MODES = ("mean", "cycle")
CONDITIONAL_NEGATIVES = ("class", "joint")


def ml_loss(e_data: torch.Tensor, e_neg: torch.Tensor, kind: str) -> torch.Tensor:
    """L_ML of ``kind`` (see the module docstring) from the energies of data and negatives."""
    if kind == "ml":
        return e_data.mean() - e_neg.mean()
    if kind == "softmax":
        w = torch.softmax(-e_neg.detach(), dim=0)
        return e_data.mean() - (w * e_neg).sum()
    return e_data.mean() + torch.logsumexp(-e_neg, dim=0) - math.log(e_neg.shape[0])


@OBJECTIVES.register("igebm", context=("energy", "sampler", "target"))
@OBJECTIVES.register(
    "igebm-conditional", context=("energy", "sampler", "target"), defaults={"conditional": True}
)
class IGEBM(ContrastiveDivergence):
    """IGEBM's maximum-likelihood training with a replay buffer.

    Parameters (beyond :class:`~nrf.objectives.ContrastiveDivergence`'s, whose ``start``
    defaults to ``"buffer"`` here, ``alpha`` to 1 as in the authors' code and
    ``noise_range`` to (0, 1), IGEBM's pixels)
    ----------
    loss:
        ``"ml"``, ``"softmax"`` or ``"logsumexp"`` (see the module docstring).
    data_noise:
        Standard deviation of the Gaussian noise added to each data batch (the tutorial:
        0.005); 0 for none.
    data_clamp:
        ``(low, high)``: clip the noised data to this box (the tutorial clips to [-1, 1]).
    kl_weight:
        Weight of the sampling loss L_KL (0: off). Needs a :class:`~nrf.samplers.Langevin`
        sampler and the Boltzmann target.
    kl_steps:
        How many of the last Langevin steps L_KL differentiates through.
    conditional:
        Train a class energy E(x, y) on labelled data (see the module docstring).
    conditional_negatives:
        ``"class"`` (negatives from E(., y) for the batch's labels, IGEBM) or ``"joint"``
        (from the joint density, see the module docstring); only with ``conditional``.
    classifier_weight:
        Weight of the cross-entropy of the data's labels (0: none); only with ``conditional``.
    ensemble, ensemble_every, ensemble_mode:
        Historical ensembles for sampling (see the module docstring); ``ensemble = 1``: off.
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler,
        k: int = 60,
        start: str = "buffer",
        *,
        alpha: float = 1.0,
        buffer_size: int = 10000,
        reinit_prob: float = 0.05,
        noise_range: tuple[float, float] = (0.0, 1.0),
        n_particles: int | None = None,
        loss: str = "ml",
        data_noise: float = 0.0,
        data_clamp: tuple[float, float] | None = None,
        kl_weight: float = 0.0,
        kl_steps: int = 1,
        conditional: bool = False,
        conditional_negatives: str = "class",
        classifier_weight: float = 0.0,
        ensemble: int = 1,
        ensemble_every: int = 100,
        ensemble_mode: str = "mean",
        target: Callable[[nn.Module], Target] = BoltzmannTarget,
    ) -> None:
        super().__init__(
            energy, sampler, k, start, alpha=alpha, buffer_size=buffer_size, reinit_prob=reinit_prob,
            noise_range=noise_range, n_particles=n_particles, target=target,
        )  # fmt: skip
        self.loss = check_choice("loss", loss, LOSSES)
        self.data_noise = check_positive("data_noise", data_noise, allow_zero=True)
        if data_clamp is not None:
            lo, hi = (float(v) for v in data_clamp)
            if not lo < hi:
                raise ValueError(f"data_clamp must be (low, high) with low < high, got {data_clamp!r}")
            data_clamp = (lo, hi)
        self.data_clamp = data_clamp
        self.kl_weight = check_positive("kl_weight", kl_weight, allow_zero=True)
        self.kl_steps = check_positive_int("kl_steps", kl_steps)
        if self.kl_weight > 0:
            if not isinstance(sampler, Langevin) or sampler.mh:
                raise ValueError(
                    f"kl_weight > 0 differentiates Langevin steps; the sampler is {type(sampler).__name__}"
                    + (" with mh=True" if isinstance(sampler, Langevin) else "")
                )
            if target is not BoltzmannTarget:
                raise ValueError("kl_weight > 0 needs the Boltzmann target exp(-E(x)) (the default target)")
            if self.kl_steps > self.k:
                raise ValueError(f"kl_steps ({self.kl_steps}) must not exceed k ({self.k})")
        self.ensemble = check_positive_int("ensemble", ensemble)
        self.ensemble_every = check_positive_int("ensemble_every", ensemble_every)
        self.ensemble_mode = check_choice("ensemble_mode", ensemble_mode, ENSEMBLE_MODES)
        self._snapshots: list[dict[str, torch.Tensor]] = []
        self.conditional = check_bool("conditional", conditional)
        self.conditional_negatives = check_choice(
            "conditional_negatives", conditional_negatives, CONDITIONAL_NEGATIVES
        )
        self.classifier_weight = check_positive("classifier_weight", classifier_weight, allow_zero=True)
        if self.classifier_weight > 0 and not self.conditional:
            raise ValueError(
                f"classifier_weight={classifier_weight!r} needs conditional=True (a class energy)"
            )
        if self.conditional_negatives != "class" and not self.conditional:
            raise ValueError(
                f"conditional_negatives={conditional_negatives!r} needs conditional=True (a class energy)"
            )
        if self.conditional:
            check_class_energy(energy, "igebm-conditional")
            if start == "persistent":
                raise ValueError("conditional=True draws its chains' labels per batch: use start 'buffer', "
                                 "'noise' or 'data', not 'persistent'")  # fmt: skip

    def negatives(
        self,
        start: torch.Tensor | ChainState,
        generator: torch.Generator | None,
        energy: nn.Module | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """``steps`` (default ``k``) sampler transitions from ``start`` with the energy in
        evaluation mode."""
        with evaluation_mode(self.energy):
            return super().negatives(start, generator, energy, steps)

    def conditional_sample(
        self,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        start: torch.Tensor | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Images of classes ``y`` (one per label): ``steps`` (default k) sampler steps on
        E(., y_i) from ``start`` (default: the replay buffer, or noise), e.g. digits of one
        class to convert them into another. Needs a class energy."""
        energy = check_class_energy(self.energy, "conditional_sample")
        n = int(y.shape[0])
        start = self.sample_starts(n, generator) if start is None else start
        if start.shape[0] != n:
            raise ValueError(f"start holds {start.shape[0]} rows for {n} labels")
        k = self.k if steps is None else check_positive_int("steps", steps)
        return self.negatives(start, generator, ConditionedEnergy(energy, y), k)

    def _kl_negatives(
        self, start: torch.Tensor, generator: torch.Generator | None, energy: nn.Module
    ) -> torch.Tensor:
        """k - kl_steps sampler steps on ``energy`` without a graph, then kl_steps Langevin
        steps whose result is a differentiable function of the parameters; returns x~K
        (with its graph)."""
        sampler: Any = self.sampler
        with evaluation_mode(self.energy):
            state = sampler.init(start)
            head = self.k - self.kl_steps
            if head:
                state, _ = run(sampler, self.target_factory(energy), state, head, generator=generator)
            x = state.x.detach().requires_grad_(True)
            for t in range(head, self.k):
                delta = sampler.step_size(t)
                scale = sampler.noise_std(delta)
                if sampler.noise_first and scale:
                    x = self._box(x + scale * noise_like(x, generator), sampler)
                (grad,) = torch.autograd.grad(-energy(x).sum(), x, create_graph=True)  # grad log p
                noise = noise_like(x, generator) if scale and not sampler.noise_first else None
                x = self._box(
                    langevin_update(x, clip_gradient(grad, sampler.grad_clip), delta, noise, scale), sampler
                )
        return x

    @staticmethod
    def _box(x: torch.Tensor, sampler: Any) -> torch.Tensor:
        return x if sampler.clamp is None else x.clamp(*sampler.clamp)

    def _data(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.data_noise > 0:
            x = x + self.data_noise * torch.randn(
                x.shape, generator=generator, device=x.device, dtype=x.dtype
            )
        if self.data_clamp is not None:
            x = x.clamp(*self.data_clamp)
        return x

    def generative_loss(
        self, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """L (the module docstring's loss) on the data rows ``x`` (with labels ``y`` when
        conditional), with its parts as floats: ``loss_ml``, ``energy_data``,
        ``energy_samples`` (and ``loss_kl``). Draws the negatives and updates the buffer or
        chains."""
        if self.event_shape is None:
            self.event_shape = tuple(x.shape[1:])
        if self.conditional and y is None:
            raise ValueError("conditional=True needs the batch's labels")
        scored: nn.Module = self.energy
        sampled: nn.Module = self.energy
        x_pos = self._data(x, generator)
        x_kl: torch.Tensor | None = None
        starts: torch.Tensor | None = None
        if y is not None:
            y_neg = y
            if self.conditional_negatives == "joint":  # the chains' labels by a Gibbs step
                starts = self._starts(x, generator)
                y_neg = self.gibbs_labels(starts, generator)
            sampled = ConditionedEnergy(self.energy, y_neg)
            scored = ConditionedEnergy(self.energy, torch.cat([y, y_neg]))  # data rows, then negatives
        if self.kl_weight > 0:
            persistent = self.start == "persistent"
            if starts is None:
                starts = self.chains(x, generator).x if persistent else self._starts(x, generator)
            x_kl = self._kl_negatives(starts, generator, sampled)
            x_neg = x_kl.detach()
            if persistent:
                self._chains = self.sampler.init(x_neg)
        elif self.start == "persistent":
            x_neg = self.negatives(self.chains(x, generator), generator)
        else:
            if starts is None:
                starts = self._starts(x, generator)
            x_neg = self.negatives(starts, generator, sampled)
        if self.buffer is not None:
            self.buffer.push(x_neg)
        if self.conditional:
            both = scored(torch.cat([x_pos, x_neg]))
            e_data, e_neg = both[: x.shape[0]], both[x.shape[0] :]
        else:
            e_data, e_neg = paired_energies(self.energy, x_pos, x_neg)
        loss_ml = ml_loss(e_data, e_neg, self.loss)
        loss = loss_ml
        if self.alpha > 0:
            loss = loss + self.alpha * (e_data.pow(2).mean() + e_neg.pow(2).mean())
        parts: dict[str, float] = {
            "loss_ml": float(loss_ml.detach()),
            "energy_data": float(e_data.detach().mean()),
            "energy_samples": float(e_neg.detach().mean()),
        }
        if x_kl is not None:
            frozen = {name: p.detach() for name, p in sampled.named_parameters()}
            with evaluation_mode(self.energy):
                loss_kl = functional_call(sampled, frozen, (x_kl,)).mean()
            loss = loss + self.kl_weight * loss_kl
            parts["loss_kl"] = float(loss_kl.detach())
        return loss, parts

    @torch.no_grad()
    def gibbs_labels(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One label per row drawn from p(y | x) = softmax(-E(x, .)) (evaluation mode)."""
        energy: Any = self.energy
        with evaluation_mode(energy):
            probs = torch.softmax(energy.logits(x).float(), dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        energy: Any = self.energy
        y = labels_of(batch, energy.n_classes, "igebm-conditional") if self.conditional else None
        loss, parts = self.generative_loss(batch.x, ctx.generator, y)
        if self.classifier_weight > 0:
            assert y is not None
            loss_ce, parts["accuracy"] = class_cross_entropy(energy, batch.x, y)
            loss = loss + self.classifier_weight * loss_ce
            parts["loss_ce"] = float(loss_ce.detach())
        ctx.update("energy", loss)
        self.snapshot(ctx.step + 1)
        return {"loss": float(loss.detach()), **parts}

    # --- historical ensembles ------------------------------------------------------------

    def snapshot(self, step: int) -> None:
        """Keep the energy's parameters and buffers after update ``step`` when it is a
        multiple of ``ensemble_every`` (the last ``ensemble`` snapshots are kept)."""
        if self.ensemble == 1 or step % self.ensemble_every:
            return
        self._snapshots.append({k: v.detach().clone() for k, v in self.energy.state_dict().items()})
        del self._snapshots[: -self.ensemble]

    def ensemble_members(self) -> list[nn.Module]:
        """The kept snapshots as frozen copies of the energy, oldest first."""
        members = []
        for state in self._snapshots:
            member = copy.deepcopy(self.energy).eval().requires_grad_(False)
            member.load_state_dict(state)
            members.append(member)
        return members

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
        init: str | None = None,
    ) -> torch.Tensor:
        """As :meth:`ContrastiveDivergence.sample`; with a historical ensemble (``ensemble``
        > 1 and snapshots taken), the chains follow the ensemble (``ensemble_mode``)."""
        members = self.ensemble_members() if self.ensemble > 1 else []
        if not members:
            return super().sample(n, generator, steps=steps, init=init)
        k = self.k if steps is None else check_positive_int("steps", steps)
        x = self.sample_starts(n, generator, init)
        if self.ensemble_mode == "mean":
            mean = SumEnergy(members, [1.0 / len(members)] * len(members))
            return self.negatives(x, generator, energy=mean, steps=k)
        shares = [k // len(members) + (i < k % len(members)) for i in range(len(members))]
        for member, share in zip(members, shares, strict=True):
            if share:
                x = self.negatives(x, generator, energy=member, steps=share)
        return x

    def extra_state(self) -> dict[str, Any]:
        out = super().extra_state()
        if self._snapshots:
            out["ensemble_kept"] = len(self._snapshots)
            for i, state in enumerate(self._snapshots):
                out.update({f"ensemble.{i}.{k}": v for k, v in state.items()})
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        kept = int(state.get("ensemble_kept", 0))
        self._snapshots = [
            {k[len(f"ensemble.{i}.") :]: v for k, v in state.items() if k.startswith(f"ensemble.{i}.")}
            for i in range(kept)
        ]
