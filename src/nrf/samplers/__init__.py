"""Samplers: dynamics only, one contract (``init`` / ``step`` / ``run``) for all.

Each sampler has its own state and info types (:class:`SGHMCState` carries momenta,
:class:`MHState` the cached log-density of MALA and HMC); gradient samplers derive from
:class:`GradientSampler` (a step-size schedule). Every sampler is registered by name in
:data:`SAMPLERS` and rebuilt from its ``to_config()`` by ``SAMPLERS.build``.
Update equations are small pure functions taking their noise as an argument
(:func:`langevin_update`, :func:`sghmc_update`, :func:`leapfrog`, :func:`mppi_update`,
:func:`gibbs_sweep`, :func:`autoregressive_gamma_step`, :func:`mala_step`).
"""

from nrf.samplers.annealed import AnnealedInfo, AnnealedLangevin, annealing_temperature
from nrf.samplers.base import (
    SAMPLERS,
    ChainState,
    GradientSampler,
    GradientStepInfo,
    MHInfo,
    MHState,
    Sampler,
    StepInfo,
    run,
)
from nrf.samplers.coopnet import CoopNet
from nrf.samplers.driven import (
    DrivenGibbsInfo,
    DrivenGibbsState,
    TemperatureDrivenGibbs,
    autoregressive_gamma_step,
    sample_gamma,
)
from nrf.samplers.gibbs import BlockGibbs, GibbsInfo, GibbsState, gibbs_sweep
from nrf.samplers.hmc import HMC, HMCState, leapfrog
from nrf.samplers.langevin import Langevin, LangevinState, langevin_update, mala_step
from nrf.samplers.mppi import MPPI, mppi_update
from nrf.samplers.replay_buffer import ReplayBuffer
from nrf.samplers.schedules import SCHEDULES, Constant, PolynomialDecay
from nrf.samplers.sghmc import SGHMC, SGHMCState, sghmc_update
from nrf.samplers.tempering import ParallelTempering, TemperingInfo, TemperingState

__all__ = [
    "HMC",
    "MPPI",
    "SAMPLERS",
    "SCHEDULES",
    "SGHMC",
    "AnnealedInfo",
    "AnnealedLangevin",
    "BlockGibbs",
    "ChainState",
    "Constant",
    "CoopNet",
    "DrivenGibbsInfo",
    "DrivenGibbsState",
    "GibbsInfo",
    "GibbsState",
    "GradientSampler",
    "GradientStepInfo",
    "HMCState",
    "Langevin",
    "LangevinState",
    "MHInfo",
    "MHState",
    "ParallelTempering",
    "PolynomialDecay",
    "ReplayBuffer",
    "SGHMCState",
    "Sampler",
    "StepInfo",
    "TemperatureDrivenGibbs",
    "TemperingInfo",
    "TemperingState",
    "annealing_temperature",
    "autoregressive_gamma_step",
    "gibbs_sweep",
    "langevin_update",
    "leapfrog",
    "mala_step",
    "mppi_update",
    "run",
    "sample_gamma",
    "sghmc_update",
]
