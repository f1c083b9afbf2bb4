"""The potentials of the Inclusive-NRF paper's tables, by name.

=========  ==========================================================  =====================
name       network                                                     source
=========  ==========================================================  =====================
gmm        MLP 2-100-100-1, leaky ReLU 0.2, weight norm                Table VI
kdd        MLP 118-60-30-10-1, tanh, weight norm                       Table VII
mnist      MLP 784-1000-500-250-250-250-1, leaky ReLU 0.2, weight norm Table VIII
cifar      9-layer conv net, leaky ReLU 0.2, weight norm               Table IX
sngan-cnn  SNGAN standard CNN with spectral norm                       SNGAN Table 3
sngan-res  SNGAN ResNet with spectral norm                             SNGAN Table 4
rbm        RBM 784-500 on 1 x 28 x 28 images, Bernoulli visible units    BEAM / Salakhutdinov
           (``visible``, ``n_visible``, ``n_hidden`` overridable)       & Murray 2008
tutorial   CNN 16-32-64 channels, Swish, on 1 x 28 x 28 images           EBM tutorial 003_…
           (``hidden``, ``spectral`` overridable)                       section 11.2
resnet     residual energy, stages 32-64 x 2 blocks, spectral norm       IGEBM (002_…); ``preset``
           (``preset = "cifar10"`` / ``"imagenet32"``: IGEBM's networks)  cifar10 / imagenet32
resnet-conditional  the same with per-class gains and biases, E(x, y)  IGEBM section 4
tutorial-conditional  the tutorial's CNN with per-class gains and      IGEBM section 4 on
           biases after each layer, E(x, y)                             003_… 11.2's network
jem-cnn    the tutorial's CNN with 10 logits; energy -logsumexp of       JEM (Grathwohl et al.)
           the logits (:class:`TutorialCNNClassifier`)                   on MNIST
digit-cnn  CNN classifier 32-64 conv, max-pool, 128 linear, 10 logits    nrf's FID-MNIST
           (:class:`DigitClassifier`)                                   feature network
trajectory  transition energy E(x_{t+1} | x_{t-2..t}): FC 32, self-       IGEBM 001_… Fig. 14c
           attention, Conv1D 128 x 2, dense -> 1 (``state_dim`` 2, the
           bouncing ball; ``context``, ``action_dim`` overridable)
trajectory-ff  the same layers, dense -> d: the feed-forward predictor  001_… Fig. 8 baseline
trajectory-fc  transition energy, 3 x 128 fully connected               IGEBM 002_… section 5
trajectory-fc-sn  3 x 128 FC predictor with spectral norm               002_…'s FC baseline
=========  ==========================================================  =====================

Weight-normalized presets need :func:`nrf.nn.data_dependent_init` on a batch of data
before training.
"""

from __future__ import annotations

from typing import Any

from nrf._checks import check_choice
from nrf.energies.base import Energy
from nrf.energies.batched_mlp import BatchedMLPEnergy
from nrf.energies.classifier import DigitClassifier, TutorialCNNClassifier
from nrf.energies.conditional_cnn import ConditionalTutorialCNNEnergy
from nrf.energies.conv import ConvEnergy, SNGANConvEnergy, SNGANResNetEnergy, TutorialCNNEnergy
from nrf.energies.mlp import MLPEnergy
from nrf.energies.rbm import RBM
from nrf.energies.resnet import ConditionalResNetEnergy, ResNetEnergy
from nrf.energies.transition import TransitionEnergy, TransitionPredictor

POTENTIALS = (
    "gmm",
    "kdd",
    "mnist",
    "cifar",
    "sngan-cnn",
    "sngan-res",
    "rbm",
    "tutorial",
    "resnet",
    "resnet-conditional",
    "tutorial-conditional",
    "jem-cnn",
    "digit-cnn",
    "trajectory",
    "trajectory-ff",
    "trajectory-fc",
    "trajectory-fc-sn",
)
# transition models (nrf.energies.transition): name -> (class, architecture, spectral norm)
_TRANSITION: dict[str, tuple[type, str, bool]] = {
    "trajectory": (TransitionEnergy, "attention-conv", False),
    "trajectory-ff": (TransitionPredictor, "attention-conv", False),
    "trajectory-fc": (TransitionEnergy, "mlp", False),
    "trajectory-fc-sn": (TransitionPredictor, "mlp", True),
}
_MLP_ARGS: dict[str, dict[str, Any]] = {
    "gmm": {"hidden": (100, 100), "activation": "leaky_relu"},
    "kdd": {"hidden": (60, 30, 10), "activation": "tanh"},
    "mnist": {"hidden": (1000, 500, 250, 250, 250), "activation": "leaky_relu"},
}


def paper_potential(name: str, n_models: int | None = None, **overrides: Any) -> Energy:
    """Build the potential network called ``name`` (see the module table).

    Keyword ``overrides`` go to the network's constructor, e.g.
    ``paper_potential("kdd", event_shape=(120,))`` or ``scale_trainable=False``. With
    ``n_models`` (MLP presets only), ``n_models`` independent copies evaluated as one
    (:class:`~nrf.energies.BatchedMLPEnergy`), for training several seeds together.

    >>> paper_potential("gmm").event_shape
    (2,)
    """
    check_choice("name", name, POTENTIALS)
    if n_models is not None:
        if name not in ("gmm", "kdd", "mnist"):
            raise ValueError(f"n_models: only the MLP presets (gmm, kdd, mnist) can be batched, got {name!r}")
        single = paper_potential(name, **overrides)
        kwargs = {**_MLP_ARGS[name], **overrides}
        kwargs.pop("event_shape", None)  # the single model's, defaults included
        return BatchedMLPEnergy(n_models, single.event_shape, **kwargs)
    if name == "gmm":
        return MLPEnergy(
            **{"event_shape": (2,), "hidden": (100, 100), "activation": "leaky_relu", **overrides}
        )
    if name == "kdd":
        return MLPEnergy(**{"event_shape": (118,), "hidden": (60, 30, 10), "activation": "tanh", **overrides})
    if name == "mnist":
        kwargs = {
            "event_shape": (1, 28, 28),
            "hidden": (1000, 500, 250, 250, 250),
            "activation": "leaky_relu",
        }
        return MLPEnergy(**{**kwargs, **overrides})
    if name == "cifar":
        return ConvEnergy(**{"event_shape": (3, 32, 32), **overrides})
    if name == "sngan-cnn":
        return SNGANConvEnergy(**{"event_shape": (3, 32, 32), **overrides})
    if name == "rbm":
        shape = {} if "n_visible" in overrides else {"event_shape": (1, 28, 28)}  # MNIST images
        return RBM(**{"n_visible": 784, "n_hidden": 500, **shape, **overrides})
    if name == "tutorial":
        return TutorialCNNEnergy(**overrides)
    if name == "resnet":
        return ResNetEnergy(**overrides)
    if name == "resnet-conditional":
        return ConditionalResNetEnergy(**overrides)
    if name == "tutorial-conditional":
        return ConditionalTutorialCNNEnergy(**overrides)
    if name == "jem-cnn":
        return TutorialCNNClassifier(**overrides)
    if name == "digit-cnn":
        return DigitClassifier(**overrides)
    if name in _TRANSITION:
        cls, architecture, spectral = _TRANSITION[name]
        kwargs = {"state_dim": 2, "architecture": architecture, "spectral_norm": spectral, **overrides}
        model: Energy = cls(**kwargs)
        return model
    return SNGANResNetEnergy(**{"event_shape": (3, 32, 32), **overrides})
