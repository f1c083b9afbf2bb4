"""The augmented target of Inclusive-NRF (Eq. 6, 9-13): p(x) q(h | x) over (x, h).

The exact gradient of log p_theta(x) q_phi(h | x) = u(x) + log q(h, x) - log q(x) needs
the intractable d/dx log q(x). Proposition 2 writes it as E_{h* ~ q(h*|x)}[d/dx log q(h*, x)],
estimated with one inner Langevin step h* from the current h. The stochastic gradient
(Eq. 13) is

    Delta_x = d/dx [ -E(x) + log q(h, x) - log q(h*, x) ],
    Delta_h = d/dh log q(h, x),
    h*      = h + delta_h d/dh log q(h, x) + sqrt(2 delta_h) eta,   eta ~ N(0, I),
              (repeated ``inner_steps`` times; the paper uses one step)

with h* = h at the first gradient the target computes (chains start from an ancestral
sample of q, so h is already a draw from q(h | x)); there Delta_x reduces to -dE/dx. The
target keeps that rule itself: a new target (or one after :meth:`AugmentedTarget.restart`)
treats its first gradient as the first step of fresh chains.

``variant="x-only"`` is the authors' code: only x is revised (h frozen, h* = h), so the
drift of x is -dE/dx and h keeps its generated value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nrf._checks import check_choice, check_positive, check_positive_int
from nrf.generators.base import LatentGenerator
from nrf.nn import frozen_weights
from nrf.targets.base import Position, Target

LogJoint = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

VARIANTS = ("paper", "x-only")


class AugmentedTarget(Target):
    """p(x) q(h | x) with the stochastic gradient of Inclusive-NRF Eq. 13.

    Parameters
    ----------
    energy:
        E(x), lower = more probable (the paper's potential is u = -E).
    joint:
        The auxiliary generator (a :class:`~nrf.generators.LatentGenerator` with sigma > 0)
        or any callable ``log_joint(x, h) -> Tensor[batch]`` giving log q(x, h).
    inner_step_size:
        delta_h of the inner Langevin step that draws h*.
    inner_noise_scale:
        Noise standard deviation of the inner step; ``None`` means sqrt(2 delta_h).
    inner_steps:
        Inner Langevin steps from h to h* (the paper uses 1; more steps reduce the bias
        of the estimator, since h* then depends less on h).
    variant:
        ``"paper"`` (revise x and h) or ``"x-only"`` (the authors' code: h frozen).
    """

    exact = False

    def __init__(
        self,
        energy: nn.Module,
        joint: LatentGenerator | LogJoint,
        inner_step_size: float = 0.01,
        *,
        inner_noise_scale: float | None = None,
        variant: str = "paper",
        inner_steps: int = 1,
    ) -> None:
        self.energy = energy
        self.joint = joint
        self.variant = check_choice("variant", variant, VARIANTS)
        self.inner_steps = check_positive_int("inner_steps", inner_steps)
        self.inner_step_size = check_positive("inner_step_size", inner_step_size)
        if inner_noise_scale is None:
            self.inner_noise_scale = math.sqrt(2.0 * self.inner_step_size)
        else:
            self.inner_noise_scale = check_positive("inner_noise_scale", inner_noise_scale, allow_zero=True)
        self.started = False
        deterministic = (
            isinstance(joint, LatentGenerator) and not joint.learn_sigma and float(joint.sigma) <= 0
        )
        if variant == "paper" and deterministic:
            raise ValueError(
                "joint: the paper's augmented target needs a generator with sigma > 0; "
                "use variant='x-only' for a deterministic generator"
            )

    def _log_joint(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if isinstance(self.joint, LatentGenerator):
            return self.joint.log_prob(x, h)
        out: torch.Tensor = self.joint(x, h)
        return out

    def log_prob(self, position: Position) -> torch.Tensor:
        raise NotImplementedError(
            "AugmentedTarget has no tractable log-density (log q(x) is unknown); "
            "use it with SGLD / SGHMC, not with a Metropolis-Hastings sampler"
        )

    def _inner_chain(
        self, x: torch.Tensor, h: torch.Tensor, gh: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """h* after ``inner_steps`` Langevin steps on q(h | x) from h (``gh`` is the gradient at h)."""
        h_star = h.detach()
        for i in range(self.inner_steps):
            if i > 0:
                gh = self.latent_grad(x, h_star)
            noise = torch.randn(h.shape, generator=generator, device=h.device, dtype=h.dtype)
            h_star = h_star + self.inner_step_size * gh + self.inner_noise_scale * noise
        return h_star.detach()

    def model_grad(self, x: torch.Tensor) -> torch.Tensor:
        """d/dx log p(x) = -dE/dx."""
        with torch.enable_grad(), frozen_weights():
            xg = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(-self.energy(xg).sum(), xg)
        return g

    def latent_grad(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """d/dh log q(h, x)."""
        with torch.enable_grad(), frozen_weights():
            hg = h.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._log_joint(x.detach(), hg).sum(), hg)
        return g

    def moves(self, position: Position) -> tuple[bool, ...]:
        return (True, False) if self.variant == "x-only" else (True, True)

    def restart(self) -> None:
        """The next gradient is the first step of new chains started from ancestral samples
        of q (h* = h)."""
        self.started = False

    def log_prob_and_grad(
        self, position: Position, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, Position]:
        """Returns -E(x) (the tractable part, for monitoring) and (Delta_x, Delta_h)."""
        x, h = position
        first, self.started = not self.started, True
        with torch.enable_grad(), frozen_weights():
            xg = x.detach().requires_grad_(True)
            if self.variant == "x-only":
                neg_e = -self.energy(xg)
                (gx,) = torch.autograd.grad(neg_e.sum(), xg)
                return neg_e.detach(), (gx, torch.zeros_like(h))
            hg = h.detach().requires_grad_(True)
            neg_e = -self.energy(xg)
            log_q = self._log_joint(xg, hg)
            if first:
                # h* = h: the two log q terms cancel; x follows the model's gradient only.
                (gx,) = torch.autograd.grad(neg_e.sum(), xg)
                (gh,) = torch.autograd.grad(log_q.sum(), hg)
            else:
                gx_total, gh = torch.autograd.grad((neg_e + log_q).sum(), [xg, hg])
                h_star = self._inner_chain(x, h, gh.detach(), generator)
                xs = x.detach().requires_grad_(True)
                (gx_star,) = torch.autograd.grad(self._log_joint(xs, h_star).sum(), xs)
                gx = gx_total - gx_star
        return neg_e.detach(), (gx.detach(), gh.detach())
