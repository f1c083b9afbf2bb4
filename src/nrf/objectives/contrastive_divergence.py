"""Contrastive divergence and its persistent / replay-buffer variants (maximum likelihood
with MCMC negatives), as in the EBM tutorial and IGEBM Algorithm 1.

The gradient of the negative log-likelihood of p(x) ∝ exp(-E(x)) is

    d/dtheta [ E_data E(x) - E_model E(x) ],

estimated with a batch of data and a batch of negatives x- from ``k`` sampler steps. The
loss minimized is

    L = mean E(x_data) - mean E(x-) + alpha * (mean E(x_data)^2 + mean E(x-)^2),

the last term being IGEBM's energy-magnitude regularizer (``alpha``, 0 by default).
Negatives start from:

* ``"data"``: the batch itself (CD-k, Hinton 2002);
* ``"persistent"``: the previous negatives (PCD, Tieleman 2008): the sampler's whole chain
  state (e.g. a Gibbs sampler's hidden units, a driven sampler's inverse temperatures)
  continues across updates and checkpoints; one chain per batch row, or ``n_particles``
  fantasy particles started at random rows of the first batch;
* ``"buffer"``: a replay buffer with 5 % re-initialization (IGEBM);
* ``"noise"``: fresh uniform noise in the data's range (short-run MCMC).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nrf._checks import check_bool, check_choice, check_positive, check_positive_int, check_probability
from nrf.data.batch import Batch
from nrf.nn.ensemble import ensemble_size
from nrf.objectives.base import OBJECTIVES, Objective, StepContext, paired_energies
from nrf.samplers import ChainState, ReplayBuffer, Sampler, run
from nrf.targets import BoltzmannTarget, Target

STARTS = ("data", "persistent", "buffer", "noise")
SAMPLE_STARTS = ("buffer", "chains", "noise")


@OBJECTIVES.register("cd", aliases=("contrastive-divergence",), context=("energy", "sampler", "target"))
class ContrastiveDivergence(Objective):
    """CD-k / PCD / replay-buffer maximum likelihood for an energy.

    Parameters
    ----------
    energy:
        The model, ``energy(x) -> (batch,)``.
    sampler:
        Any nrf sampler (Langevin in the papers); ``k`` transitions per update.
    start:
        Where negative chains start (see the module docstring).
    alpha:
        Weight of the energy-magnitude regularizer.
    noise_range:
        ``(low, high)`` of the uniform noise for ``"noise"`` / ``"buffer"`` starts.
    n_particles:
        With ``start="persistent"``: the number of persistent chains (default: one per
        batch row).
    target:
        Builds the density the negative chains follow from the energy (default: the
        Boltzmann density exp(-E(x)); e.g. ``lambda e: BoltzmannTarget(e, temperature=2)``,
        or ``RBMTarget`` for Gibbs samplers on an RBM).
    centre:
        Keep a centred RBM centred (Montavon & Mueller 2012; Melchior et al. 2016): before
        each update the energy's offsets move towards the batch's means,

            mu <- (1 - nu) mu + nu mean(v_data),   lambda <- (1 - nu) lambda + nu mean(p(h | v_data)),

        with nu = ``centre_rate`` (1 on the first update), through the energy's
        ``set_offsets`` (which keeps the distribution unchanged); the gradient is then that
        of the centred parametrization. Needs ``set_offsets`` and ``hidden_probs`` (an
        :class:`~nrf.energies.RBM`); with several processes the means are averaged over them.
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler,
        k: int = 10,
        start: str = "data",
        *,
        alpha: float = 0.0,
        buffer_size: int = 10000,
        reinit_prob: float = 0.05,
        noise_range: tuple[float, float] = (-1.0, 1.0),
        n_particles: int | None = None,
        target: Callable[[nn.Module], Target] = BoltzmannTarget,
        centre: bool = False,
        centre_rate: float = 0.01,
    ) -> None:
        super().__init__()
        self.target_factory = target
        self.energy = energy
        self.sampler = sampler
        self.k = check_positive_int("k", k)
        self.start = check_choice("start", start, STARTS)
        self.alpha = check_positive("alpha", alpha, allow_zero=True)
        lo, hi = noise_range
        if not lo < hi:
            raise ValueError(f"noise_range must be (low, high) with low < high, got {noise_range!r}")
        self.noise_range = (float(lo), float(hi))
        self.event_shape: tuple[int, ...] | None = None
        if n_particles is not None:
            if start != "persistent":
                raise ValueError(f"n_particles is an option of start='persistent', not start={start!r}")
            check_positive_int("n_particles", n_particles)
            if ensemble_size(energy) > 1:
                raise ValueError(
                    "n_particles: persistent chains of their own are not available for ensembles"
                )
        self.n_particles = n_particles
        self._chains: ChainState | None = None
        self.buffer_size = check_positive_int("buffer_size", buffer_size)
        self.reinit_prob = check_probability("reinit_prob", reinit_prob)
        self.buffer = ReplayBuffer(buffer_size, self._noise, reinit_prob) if start == "buffer" else None
        self.centre = check_bool("centre", centre)
        self.centre_rate = check_probability("centre_rate", centre_rate)
        if self.centre and not all(
            callable(getattr(energy, m, None)) for m in ("set_offsets", "hidden_probs")
        ):
            raise ValueError(
                "centre=True needs an energy with set_offsets and hidden_probs (an RBM), got "
                f"{type(energy).__name__}"
            )
        self.centre_updates = 0

    @torch.no_grad()
    def recentre(self, x: torch.Tensor) -> None:
        """Move the energy's offsets towards the means of the data rows ``x`` (see ``centre``)."""
        if not self.centre:
            return
        energy: Any = self.energy
        flat = x.reshape(x.shape[0], -1)
        means = torch.cat([flat.mean(0), energy.hidden_probs(flat).mean(0)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(means)
            means /= torch.distributed.get_world_size()
        nu = 1.0 if self.centre_updates == 0 else self.centre_rate
        visible, hidden = means.split([energy.visible_offset.numel(), energy.hidden_offset.numel()])
        energy.set_offsets(
            visible=torch.lerp(energy.visible_offset, visible, nu),
            hidden=torch.lerp(energy.hidden_offset, hidden, nu),
        )
        self.centre_updates += 1

    def _noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        if self.event_shape is None:
            raise RuntimeError("the objective has not seen data yet (call initialize or training_step)")
        ref = next(self.energy.parameters())
        u = torch.rand((n, *self.event_shape), generator=generator, device=ref.device, dtype=ref.dtype)
        lo, hi = self.noise_range
        return lo + (hi - lo) * u

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"energy": [p for p in self.energy.parameters() if p.requires_grad]}

    def initialize(self, data: torch.Tensor) -> None:
        super().initialize(data)
        self.event_shape = tuple(data.shape[1:])

    def _starts(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = batch.shape[0]
        if self.start == "data":
            return batch
        if self.start == "noise":
            return self._noise(n, generator)
        assert self.buffer is not None
        return self.buffer.sample(n, generator)

    def chains(self, batch: torch.Tensor, generator: torch.Generator | None) -> ChainState:
        """The persistent chains (started on ``batch`` when there are none, or when their
        number no longer matches a batch they follow row for row)."""
        wanted = batch.shape[0] if self.n_particles is None else self.n_particles
        if self._chains is None or self._chains.x.shape[0] != wanted:
            if self.n_particles is None:
                start = batch.clone()
            else:
                rows = torch.randint(batch.shape[0], (wanted,), generator=generator, device=batch.device)
                start = batch[rows].clone()
            self._chains = self.sampler.init(start)
        return self._chains

    def negatives(
        self,
        start: torch.Tensor | ChainState,
        generator: torch.Generator | None,
        energy: nn.Module | None = None,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Run ``steps`` (default ``k``) sampler transitions from ``start`` (positions, or a
        chain state that is continued and kept) and return the final positions; the chains
        follow ``energy`` (default: the model's energy)."""
        target = self.target_factory(self.energy if energy is None else energy)
        state = start if isinstance(start, ChainState) else self.sampler.init(start)
        state, _ = run(self.sampler, target, state, self.k if steps is None else steps, generator=generator)
        if isinstance(start, ChainState):
            self._chains = state
        return state.x.detach()

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        x = batch.x
        if self.event_shape is None:
            self.event_shape = tuple(x.shape[1:])
        if self.start == "persistent":
            x_neg = self.negatives(self.chains(x, ctx.generator), ctx.generator)
        else:
            x_neg = self.negatives(self._starts(x, ctx.generator), ctx.generator)
        if self.buffer is not None:
            self.buffer.push(x_neg)
        self.recentre(x)
        e_data, e_neg = paired_energies(self.energy, x, x_neg)
        loss = e_data.mean() - e_neg.mean()
        if self.alpha > 0:
            loss = loss + self.alpha * (e_data.pow(2).mean() + e_neg.pow(2).mean())
        ctx.update("energy", loss)
        return {
            "loss": float(loss.detach()),
            "energy_data": float(e_data.detach().mean()),
            "energy_samples": float(e_neg.detach().mean()),
        }

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
        init: str | None = None,
    ) -> torch.Tensor:
        """``steps`` (default ``k``) sampler steps from ``init``: ``"buffer"`` (the replay
        buffer), ``"chains"`` (rows of the persistent chains drawn with replacement, the
        chains themselves untouched) or ``"noise"`` (uniform in ``noise_range``); by default
        the first of these the objective has."""
        k = self.k if steps is None else check_positive_int("steps", steps)
        return self.negatives(self.sample_starts(n, generator, init), generator, steps=k)

    def sample_starts(
        self, n: int, generator: torch.Generator | None, init: str | None = None
    ) -> torch.Tensor:
        """``n`` starting points for :meth:`sample` (see there for ``init``)."""
        if init is not None:
            check_choice("init", init, SAMPLE_STARTS)
        buffered = self.buffer is not None and len(self.buffer) > 0
        have = {"buffer": buffered, "chains": self._chains is not None, "noise": True}
        if init is not None and not have[init]:
            raise ValueError(f"init={init!r}: this objective has no {init} to start from "
                             f"(it has: {', '.join(name for name, ok in have.items() if ok)})")  # fmt: skip
        chosen = init or next(name for name, ok in have.items() if ok)
        if chosen == "buffer":
            assert self.buffer is not None
            return self.buffer.sample(n, generator)
        if chosen == "chains":
            assert self._chains is not None
            chains = self._chains.x
            rows = torch.randint(chains.shape[0], (n,), generator=generator, device=chains.device)
            return chains[rows].clone()
        return self._noise(n, generator)

    def extra_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.event_shape is not None:
            out["event_shape"] = list(self.event_shape)
        if self.centre:
            out["centre_updates"] = self.centre_updates
        if self._chains is not None:
            out.update({f"chains.{k}": v for k, v in self._chains.state_dict().items()})
        if self.buffer is not None:
            out.update({f"buffer.{k}": v for k, v in self.buffer.state_dict().items()})
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "event_shape" in state:
            self.event_shape = tuple(int(v) for v in state["event_shape"])
        self.centre_updates = int(state.get("centre_updates", 0))
        chains = {k[len("chains.") :]: v for k, v in state.items() if k.startswith("chains.")}
        if chains:
            n = int(chains["n_position"])
            self._chains = self.sampler.init(tuple(chains[f"position.{i}"] for i in range(n)))
            self._chains.load_state_dict(chains)
        elif isinstance(state.get("persistent"), torch.Tensor):  # written before chain states were kept
            self._chains = self.sampler.init(state["persistent"])
        else:
            self._chains = None
        if self.buffer is not None:
            self.buffer.load_state_dict(
                {k[len("buffer.") :]: v for k, v in state.items() if k.startswith("buffer.")}
            )
