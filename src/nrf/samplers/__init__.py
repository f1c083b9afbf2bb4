"""Samplers: dynamics only, one contract (``init`` / ``step`` / ``run``) for all.

Update equations are small pure functions taking their noise as an argument
(:func:`langevin_update`, :func:`sghmc_update`, :func:`leapfrog`, :func:`mppi_update`).
"""

from nrf.samplers.base import ChainState, Sampler, StepInfo, run
from nrf.samplers.coopnet import CoopNet
from nrf.samplers.hmc import HMC, leapfrog
from nrf.samplers.langevin import Langevin, langevin_update
from nrf.samplers.mppi import MPPI, mppi_update
from nrf.samplers.replay_buffer import ReplayBuffer
from nrf.samplers.schedules import Constant, PolynomialDecay
from nrf.samplers.sghmc import SGHMC, sghmc_update

__all__ = [
    "HMC",
    "MPPI",
    "SGHMC",
    "ChainState",
    "Constant",
    "CoopNet",
    "Langevin",
    "PolynomialDecay",
    "ReplayBuffer",
    "Sampler",
    "StepInfo",
    "langevin_update",
    "leapfrog",
    "mppi_update",
    "run",
    "sghmc_update",
]
