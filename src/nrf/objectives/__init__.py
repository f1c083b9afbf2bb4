"""Learning methods, one file each, registered by name in :data:`OBJECTIVES` and driven by
the one training loop (:mod:`nrf.training.loop`)."""

from nrf.objectives.base import OBJECTIVES, Objective, StepContext
from nrf.objectives.beam import BEAM, nearest_neighbour_critic
from nrf.objectives.classifier import Classifier
from nrf.objectives.contrastive_divergence import ContrastiveDivergence
from nrf.objectives.denoising_score_matching import DenoisingScoreMatching
from nrf.objectives.exclusive_nrf import ExclusiveNRF
from nrf.objectives.gan import GAN
from nrf.objectives.igebm import IGEBM
from nrf.objectives.inclusive_nrf import InclusiveNRF
from nrf.objectives.jem import JEM
from nrf.objectives.nce import NoiseContrastiveEstimation
from nrf.objectives.sliced_score_matching import SlicedScoreMatching
from nrf.objectives.transition_ebm import TransitionEBM
from nrf.objectives.transition_regression import TransitionRegression
from nrf.objectives.wgan_gp import WGANGP

__all__ = [
    "BEAM",
    "GAN",
    "IGEBM",
    "JEM",
    "OBJECTIVES",
    "WGANGP",
    "Classifier",
    "ContrastiveDivergence",
    "DenoisingScoreMatching",
    "ExclusiveNRF",
    "InclusiveNRF",
    "NoiseContrastiveEstimation",
    "Objective",
    "SlicedScoreMatching",
    "StepContext",
    "TransitionEBM",
    "TransitionRegression",
    "nearest_neighbour_critic",
]
