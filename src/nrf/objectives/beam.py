"""Boltzmann Encoded Adversarial Machines (BEAM, 004_… Eq. 9-16): an RBM trained on

    C = -gamma L - (1 - gamma) A,      A = E_model[T(phi(v))],

where L is the log-likelihood (its gradient from persistent fantasy particles, as PCD) and
A the adversarial term: a critic T on the hidden-unit activations phi(v) = p(h = 1 | v)
(or on the visible units), which says how much a fantasy particle looks like data. The
critic is a nearest-neighbour classifier against the data rows and fantasy particles of
the previous minibatch (their activations recomputed with the current weights), with k
neighbours of which j are data rows:

    T_NN(x)  = 2 j / k - 1,
    T_DNN(x) = 2 sum_{data neighbours i} 1 / (d_i + eps) / sum_{all k} 1 / (d_i + eps) - 1.

Its gradient is a covariance under the model (Eq. 13, with h summed out since T depends
on v only):

    dA/dtheta = Cov_model[T, -dF(v)/dtheta],

estimated over the fantasy particles v_j as mean_j (T_j - mean T) (-dF(v_j)/dtheta); the
surrogate loss minimized is therefore

    gamma (mean F(v_data) - mean F(v_model)) + (1 - gamma) mean_j (T_j - mean T) F(v_j),

with T held fixed. For the first ``warmup`` updates gamma = 1 (maximum likelihood only: the
hidden features carry no information yet). One set of fantasy particles serves both terms
and is then cached for the next update's critic, so an update costs about one PCD update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nrf._checks import check_choice, check_positive, check_positive_int, check_probability
from nrf.data.batch import Batch
from nrf.objectives.base import OBJECTIVES, StepContext, paired_energies
from nrf.objectives.contrastive_divergence import ContrastiveDivergence
from nrf.samplers import Sampler
from nrf.targets import Target

CRITICS = ("nn", "dnn")
FEATURES = ("hidden", "visible")


def nearest_neighbour_critic(
    x: torch.Tensor,
    data: torch.Tensor,
    model: torch.Tensor,
    k: int = 5,
    *,
    weighted: bool = True,
    eps: float = 1e-3,
) -> torch.Tensor:
    """T(x) in [-1, 1] for each row of ``x``: the (distance-weighted, ``weighted``) share of
    data rows among its ``k`` nearest neighbours in ``data`` and ``model`` together, as
    2 share - 1 (Eq. 15 / 16). Rows are compared as flat vectors (Euclidean distance)."""
    if k < 1 or k > data.shape[0] + model.shape[0]:
        raise ValueError(f"k must be in [1, {data.shape[0] + model.shape[0]}] (the reference rows), got {k}")
    ref = torch.cat([data.flatten(1), model.flatten(1)])
    is_data = torch.cat([torch.ones(data.shape[0]), torch.zeros(model.shape[0])]).to(ref)
    dist, idx = torch.cdist(x.flatten(1), ref).topk(k, dim=1, largest=False)
    labels = is_data[idx]
    if weighted:
        w = 1.0 / (dist + eps)
        share = (w * labels).sum(1) / w.sum(1)
    else:
        share = labels.mean(1)
    return 2.0 * share - 1.0


@OBJECTIVES.register("beam", context=("energy", "sampler", "target"))
class BEAM(ContrastiveDivergence):
    """An RBM (or any energy with ``hidden_probs``) trained against a nearest-neighbour
    adversary, with persistent fantasy particles.

    Parameters
    ----------
    energy:
        The RBM; with ``features="hidden"`` it must have ``hidden_probs(v)``.
    sampler:
        The fantasy particles' sampler (block Gibbs or the temperature-driven sampler).
    k:
        Sampler transitions per update.
    gamma:
        Weight of the log-likelihood in C (``1 - gamma`` that of the adversary).
    warmup:
        Updates of maximum likelihood only (gamma = 1) before the adversary starts.
    critic:
        ``"dnn"`` (distance-weighted, the paper's experiments) or ``"nn"``.
    critic_k, critic_eps:
        Neighbours of the critic and the regularizer of the inverse distances.
    features:
        ``"hidden"`` (the activations p(h = 1 | v), the paper) or ``"visible"`` (the
        critic on the visible units, the paper's comparison in Fig. S2).
    n_particles:
        Number of fantasy particles (default: one per batch row).
    target:
        The density the particles follow (``RBMTarget`` for Gibbs samplers).
    centre, centre_rate:
        Keep the RBM centred (see :class:`~nrf.objectives.ContrastiveDivergence`).
    """

    def __init__(
        self,
        energy: nn.Module,
        sampler: Sampler,
        k: int = 10,
        *,
        gamma: float = 0.5,
        warmup: int = 0,
        critic: str = "dnn",
        critic_k: int = 5,
        critic_eps: float = 1e-3,
        features: str = "hidden",
        n_particles: int | None = None,
        target: Callable[[nn.Module], Target] | None = None,
        centre: bool = False,
        centre_rate: float = 0.01,
    ) -> None:
        if target is None:
            from nrf.targets import RBMTarget

            target = RBMTarget
        super().__init__(
            energy, sampler, k, "persistent", n_particles=n_particles, target=target, centre=centre,
            centre_rate=centre_rate,
        )  # fmt: skip
        self.gamma = check_probability("gamma", gamma)
        self.warmup = check_positive_int("warmup", warmup, allow_zero=True)
        self.critic = check_choice("critic", critic, CRITICS)
        self.critic_k = check_positive_int("critic_k", critic_k)
        self.critic_eps = check_positive("critic_eps", critic_eps)
        self.features = check_choice("features", features, FEATURES)
        if self.features == "hidden" and not callable(getattr(energy, "hidden_probs", None)):
            raise ValueError(
                f"features='hidden' needs an energy with hidden_probs(v), got {type(energy).__name__}"
            )
        self.updates = 0
        self._previous: tuple[torch.Tensor, torch.Tensor] | None = None

    def feature(self, v: torch.Tensor) -> torch.Tensor:
        """What the critic compares: p(h = 1 | v), or v itself."""
        if self.features == "visible":
            return v.flatten(1)
        hidden_probs: Callable[[torch.Tensor], torch.Tensor] = self.energy.hidden_probs  # type: ignore[assignment]
        return hidden_probs(v)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        x = batch.x
        if self.event_shape is None:
            self.event_shape = tuple(x.shape[1:])
        x_neg = self.negatives(self.chains(x, ctx.generator), ctx.generator)
        gamma = 1.0 if self.updates < self.warmup or self._previous is None else self.gamma
        self.recentre(x)
        f_data, f_neg = paired_energies(self.energy, x, x_neg)
        likelihood = f_data.mean() - f_neg.mean()
        metrics: dict[str, float] = {}
        loss = gamma * likelihood
        if gamma < 1.0:
            assert self._previous is not None
            with torch.no_grad():
                data_prev, model_prev = self._previous
                t = nearest_neighbour_critic(
                    self.feature(x_neg), self.feature(data_prev), self.feature(model_prev),
                    min(self.critic_k, data_prev.shape[0] + model_prev.shape[0]),
                    weighted=self.critic == "dnn", eps=self.critic_eps,
                )  # fmt: skip
            loss = loss + (1.0 - gamma) * ((t - t.mean()) * f_neg).mean()
            metrics["critic"] = float(t.mean())
        ctx.update("energy", loss)
        self._previous = (x.detach().clone(), x_neg.detach().clone())
        self.updates += 1
        return {
            "loss": float(loss.detach()),
            "energy_data": float(f_data.detach().mean()),
            "energy_samples": float(f_neg.detach().mean()),
            "gamma": gamma,
            **metrics,
        }

    def extra_state(self) -> dict[str, Any]:
        out = super().extra_state()
        out["updates"] = self.updates
        if self._previous is not None:
            out["previous.data"], out["previous.model"] = self._previous
        return out

    def load_extra_state(self, state: dict[str, Any]) -> None:
        super().load_extra_state(state)
        self.updates = int(state.get("updates", 0))
        data, model = state.get("previous.data"), state.get("previous.model")
        self._previous = (
            (data, model) if isinstance(data, torch.Tensor) and isinstance(model, torch.Tensor) else None
        )
