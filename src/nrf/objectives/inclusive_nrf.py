"""Inclusive-NRF (Song & Ou, Algorithm 1): a random field p(x) ∝ exp(u(x)) = exp(-E(x))
learned with an auxiliary generator q(x, h) that is trained by *inclusive* KL(p || q).

Per batch of data x~:

1. draw (x', h') from q: h' ~ N(0, I), x' = g(h') + sigma eps;
2. revise (x', h') with L steps of SGLD or SGHMC on p(x) q(h | x) (Algorithm 2, the
   stochastic gradient of Eq. 13: :class:`~nrf.targets.AugmentedTarget`), giving (x, h);
3. update the potential by ascending  mean u(x~) - mean u(x) - alpha_p mean u(x~)^2, i.e.
   minimize  mean E(x~) - mean E(x) + alpha_p mean E(x~)^2  (the last term is the
   potential-control loss of Appendix E-A);
4. update the generator by ascending mean log q(x, h).

With persistent chains (``persistent > 0``, a replay buffer of that many revised (x, h)
pairs), step 1 draws each chain's start from the buffer (a revised sample of an earlier
iteration) and only with probability ``reinit_prob`` from q; the revised pairs are put back
(contrastive divergence with persistent chains, as IGEBM's replay buffer). The chains then
run ``L`` more steps per iteration instead of restarting at q's samples, so the negatives
approach p(x) even when q lags behind it.

Options reproduce the authors' code where it differs from the paper (see the README):
``revision="x-only"`` (only x moves, h* = h), a decoupled noise scale (the sampler's
``noise_scale``), ``sigma = 0`` (then the generator loss is 1/2 |x - g(h)|^2, the Gaussian
log-density up to its scale), ``grad_reduction="sum"`` vs ``"mean"`` (the drift uses the
gradient of the sum of potentials, i.e. per sample, or of their mean, 1/B of it), and the
generator's batch norm always in batch-statistics mode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nrf._checks import check_choice, check_positive, check_positive_int, check_probability
from nrf.data.batch import Batch
from nrf.energies.compose import ChainMeanEnergy
from nrf.generators import LatentGenerator
from nrf.nn import evaluation_mode
from nrf.nn.ensemble import ensemble_size
from nrf.objectives.base import OBJECTIVES, StepContext
from nrf.objectives.generator_based import GeneratorObjective
from nrf.samplers import ReplayBuffer, Sampler, run
from nrf.targets import AugmentedTarget, BoltzmannTarget, Target

REVISIONS = ("paper", "x-only")


TargetFactory = Callable[[nn.Module, LatentGenerator], Target]
"""Builds the revision target from the (possibly tempered) energy and the generator."""


def x_only_target(energy: nn.Module, generator: LatentGenerator) -> Target:
    """The authors' revision: x follows the model's gradient, h stays (p(x) alone)."""
    return BoltzmannTarget(energy)


@OBJECTIVES.register(
    "inclusive", aliases=("inclusive-nrf",), context=("energy", "generator", "sampler", "target")
)
class InclusiveNRF(GeneratorObjective):
    """Algorithm 1 of Inclusive-NRF.

    Parameters
    ----------
    energy, generator:
        The random field's energy E = -u and the auxiliary generator q(x, h).
    sampler:
        Langevin (SGLD) or SGHMC for the revision; ``steps`` (L) transitions per batch.
    revision:
        ``"paper"`` (revise x and h with Eq. 13) or ``"x-only"`` (the authors' code).
    alpha_p:
        Weight of the potential-control loss.
    inner_step_size:
        Step of the inner Langevin move that draws h* (Eq. 13).
    grad_reduction:
        ``"sum"`` (per-sample drift, the paper) or ``"mean"`` (1/B of it).
    generator_bn:
        ``"train"``: the generator's batch norm always uses batch statistics (authors);
        ``"eval"``: running statistics when generating for evaluation.
    control:
        ``"data"``: the potential-control loss alpha_p mean E(x~)^2 on the data (the
        paper); ``"both"``: alpha_p (mean E(x~)^2 + mean E(x)^2) on the data and the
        revised samples, IGEBM's energy regularizer, which bounds the energy gap.
    target:
        Builds the revision target from the energy and the generator (default: the
        augmented target of Eq. 13 for ``revision="paper"``, p(x) for ``"x-only"``).
    persistent:
        Capacity of the replay buffer of revised (x, h) pairs (0: none, the paper: every
        revision starts from q).
    reinit_prob:
        With ``persistent``: the probability that a chain starts from q instead of the buffer.
    """

    def __init__(
        self,
        energy: nn.Module,
        generator: LatentGenerator,
        sampler: Sampler,
        steps: int = 10,
        *,
        revision: str = "paper",
        alpha_p: float = 0.0,
        inner_step_size: float = 0.01,
        grad_reduction: str = "sum",
        generator_bn: str = "train",
        control: str = "data",
        target: TargetFactory | None = None,
        persistent: int = 0,
        reinit_prob: float = 0.05,
    ) -> None:
        super().__init__(energy, generator)
        self.target_factory = target
        self.sampler = sampler
        self.steps = check_positive_int("steps", steps, allow_zero=True)
        self.revision = check_choice("revision", revision, REVISIONS)
        self.alpha_p = check_positive("alpha_p", alpha_p, allow_zero=True)
        self.inner_step_size = check_positive("inner_step_size", inner_step_size)
        self.grad_reduction = check_choice("grad_reduction", grad_reduction, ("sum", "mean"))
        self.generator_bn = check_choice("generator_bn", generator_bn, ("train", "eval"))
        self.control = check_choice("control", control, ("data", "both"))
        self.persistent = check_positive_int("persistent", persistent, allow_zero=True)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        if persistent and ensemble_size(energy) > 1:
            raise ValueError(
                "persistent: a replay buffer mixes the rows of ensemble members; train them one by one"
            )
        self.buffer = ReplayBuffer(persistent, self._fresh_pairs, reinit_prob) if persistent else None
        if revision == "paper" and not generator.learn_sigma and float(generator.sigma) == 0.0:
            raise ValueError(
                "revision='paper' needs a generator with sigma > 0; use revision='x-only' for sigma = 0"
            )

    def _target(self) -> Target:
        energy: nn.Module = self.energy
        if self.grad_reduction == "mean":  # the drift of the mean potential of each model's chains
            energy = ChainMeanEnergy(self.energy)
        if self.target_factory is not None:
            return self.target_factory(energy, self.generator)
        if self.revision == "x-only":
            return x_only_target(energy, self.generator)
        return AugmentedTarget(energy, self.generator, inner_step_size=self.inner_step_size)

    def generate(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x', h') drawn from q (no revision)."""
        with torch.no_grad():
            self.generator.train(self.generator_bn == "train" or self.training)
            return self.generator.sample(n, generator)

    def _fresh_pairs(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n draws (x', h') of q, as rows [x' flattened, h'] (the buffer's layout)."""
        x, h = self.generate(n, generator)
        return torch.cat([x.flatten(1), h.flatten(1)], dim=1)

    def chain_starts(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the revision starts: q's draws, or with persistent chains the buffer's pairs
        (each from q with probability ``reinit_prob``)."""
        if self.buffer is None:
            return self.generate(n, generator)
        rows = self.buffer.sample(n, generator)
        shape = tuple(self.generator.event_shape)
        d = math.prod(shape)
        return rows[:, :d].reshape(n, *shape), rows[:, d:]

    def revise(
        self,
        x: torch.Tensor,
        h: torch.Tensor,
        generator: torch.Generator | None = None,
        steps: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """L revision steps from (x, h) (Algorithm 2); returns the revised (x, h)."""
        n_steps = self.steps if steps is None else steps
        if n_steps == 0:
            return x, h
        target = self._target()
        start: Any = (x,) if self.revision == "x-only" else (x, h)
        state, _ = run(self.sampler, target, self.sampler.init(start), n_steps, generator=generator)
        if self.revision == "x-only":
            return state.position[0].detach(), h
        return state.position[0].detach(), state.position[1].detach()

    def _generator_loss(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if self.generator.learn_sigma or float(self.generator.sigma) > 0:
            return -self.generator.log_prob(x, h).mean()
        mean = self.generator(h)
        return 0.5 * (x - mean).pow(2).flatten(1).sum(1).mean()

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        n = len(batch)
        x0, h0 = self.chain_starts(n, ctx.generator)
        x, h = self.revise(x0, h0, ctx.generator)
        if self.buffer is not None:
            self.buffer.push(torch.cat([x.flatten(1), h.flatten(1)], dim=1))
        e_data = self.energy(batch.x)
        e_rev = self.energy(x)
        loss_e = e_data.mean() - e_rev.mean()
        if self.alpha_p > 0:
            loss_e = loss_e + self.alpha_p * e_data.pow(2).mean()
            if self.control == "both":
                loss_e = loss_e + self.alpha_p * e_rev.pow(2).mean()
        ctx.update("energy", loss_e)
        self.generator.train()
        loss_g = self._generator_loss(x, h)
        ctx.update("generator", loss_g)
        return {
            "loss": float(loss_e.detach()),
            "loss_generator": float(loss_g.detach()),
            "energy_data": float(e_data.detach().mean()),
            "energy_samples": float(e_rev.detach().mean()),
            "revision_shift": float((x - x0).flatten(1).norm(dim=1).mean()),
        }

    def extra_state(self) -> dict[str, Any]:
        return {} if self.buffer is None else {f"buffer.{k}": v for k, v in self.buffer.state_dict().items()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.buffer is not None:
            saved = {k[len("buffer.") :]: v for k, v in state.items() if k.startswith("buffer.")}
            if saved:
                self.buffer.load_state_dict(saved)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Revision samples: generation followed by L revision steps."""
        x0, h0 = self.generate(n, generator)
        return self.revise(x0, h0, generator)[0]

    def sample_generation(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generation samples: x' from q alone."""
        return self.generate(n, generator)[0]

    @torch.no_grad()
    def interpolate(self, h1: torch.Tensor, h2: torch.Tensor, n: int = 8) -> torch.Tensor:
        """Generator means along the line from latent h1 to h2 (Fig. 6): shape ``(n, *x)``."""
        check_positive_int("n", n)
        if n < 2:
            raise ValueError(f"n must be >= 2 to include both end points, got {n}")
        t = torch.linspace(0.0, 1.0, n, device=h1.device, dtype=h1.dtype).view(n, *([1] * h1.dim()))
        path = (1 - t) * h1.unsqueeze(0) + t * h2.unsqueeze(0)
        with evaluation_mode(self.generator):
            return self.generator(path.reshape(n, -1))
