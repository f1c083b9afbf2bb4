"""Energies: ``nn.Module``s mapping a batch to per-sample energies (lower = more probable)."""

from nrf.energies.analytic import GaussianEnergy, GaussianMixtureEnergy
from nrf.energies.base import Energy
from nrf.energies.batched_mlp import BatchedMLPEnergy
from nrf.energies.classifier import ClassEnergy, DigitClassifier, TutorialCNNClassifier
from nrf.energies.compose import ChainMeanEnergy, ConditionedEnergy, SumEnergy, TemperedEnergy
from nrf.energies.conditional_cnn import ConditionalTutorialCNNEnergy
from nrf.energies.conv import ConvEnergy, SNGANConvEnergy, SNGANResNetEnergy, TutorialCNNEnergy
from nrf.energies.mlp import MLPEnergy
from nrf.energies.presets import POTENTIALS, paper_potential
from nrf.energies.rbm import RBM
from nrf.energies.resnet import ConditionalResNetEnergy, ResNetEnergy
from nrf.energies.transition import TransitionEnergy, TransitionPredictor

__all__ = [
    "POTENTIALS",
    "RBM",
    "BatchedMLPEnergy",
    "ChainMeanEnergy",
    "ClassEnergy",
    "ConditionalResNetEnergy",
    "ConditionalTutorialCNNEnergy",
    "ConditionedEnergy",
    "ConvEnergy",
    "DigitClassifier",
    "Energy",
    "GaussianEnergy",
    "GaussianMixtureEnergy",
    "MLPEnergy",
    "ResNetEnergy",
    "SNGANConvEnergy",
    "SNGANResNetEnergy",
    "SumEnergy",
    "TemperedEnergy",
    "TransitionEnergy",
    "TransitionPredictor",
    "TutorialCNNClassifier",
    "TutorialCNNEnergy",
    "paper_potential",
]
