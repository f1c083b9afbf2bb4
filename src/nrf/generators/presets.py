"""The generators of the Inclusive-NRF paper's tables, by name.

=========  =====================================================================  ==========
name       network                                                                source
=========  =====================================================================  ==========
gmm        h(2) -> 50 ReLU BN -> 50 ReLU BN -> 2 linear (weight norm)             Table VI
kdd        h(5) -> 10 tanh BN -> 30 tanh BN -> 60 tanh BN -> 118 (weight norm)    Table VII
mnist      h(100) -> 500 softplus BN -> 500 softplus BN -> 784 sigmoid (WN)       Table VIII
cifar      h(100) -> 4x4x512 BN ReLU -> deconv 256, 128 BN ReLU -> 3 tanh (WN)    Table IX
sngan-cnn  SNGAN standard CNN generator, h(128)                                   SNGAN T. 3
sngan-res  SNGAN ResNet generator, h(128)                                         SNGAN T. 4
=========  =====================================================================  ==========
"""

from __future__ import annotations

from typing import Any

from nrf._checks import check_choice
from nrf.generators.base import LatentGenerator
from nrf.generators.batched_mlp import BatchedMLPGenerator
from nrf.generators.conv import DeconvGenerator, SNGANGenerator, SNGANResNetGenerator
from nrf.generators.mlp import MLPGenerator

GENERATORS = ("gmm", "kdd", "mnist", "cifar", "sngan-cnn", "sngan-res")
_MLP_ARGS: dict[str, dict[str, Any]] = {
    "gmm": {"latent_dim": 2, "event_shape": (2,), "hidden": (50, 50), "activation": "relu"},
    "kdd": {"latent_dim": 5, "event_shape": (118,), "hidden": (10, 30, 60), "activation": "tanh"},
    "mnist": {"latent_dim": 100, "event_shape": (1, 28, 28), "hidden": (500, 500), "activation": "softplus",
              "output_activation": "sigmoid"},
}  # fmt: skip


def paper_generator(name: str, n_models: int | None = None, **overrides: Any) -> LatentGenerator:
    """Build the generator called ``name`` (see the module table).

    Keyword ``overrides`` go to the constructor, e.g. ``sigma=0.1``. With ``n_models``
    (MLP presets only), that many independent copies evaluated as one
    (:class:`~nrf.generators.BatchedMLPGenerator`).

    >>> paper_generator("gmm").latent_dim
    2
    """
    check_choice("name", name, GENERATORS)
    if n_models is not None:
        if name not in ("gmm", "kdd", "mnist"):
            raise ValueError(f"n_models: only the MLP presets (gmm, kdd, mnist) can be batched, got {name!r}")
        paper_generator(name, **overrides)  # validates the overrides on a single model
        kwargs = {**_MLP_ARGS[name], **overrides}
        latent, shape = kwargs.pop("latent_dim"), kwargs.pop("event_shape")
        return BatchedMLPGenerator(n_models, latent, shape, **kwargs)
    if name in _MLP_ARGS:
        return MLPGenerator(**{**_MLP_ARGS[name], **overrides})
    if name == "cifar":
        return DeconvGenerator(**{"latent_dim": 100, "event_shape": (3, 32, 32), **overrides})
    if name == "sngan-cnn":
        return SNGANGenerator(**{"latent_dim": 128, "event_shape": (3, 32, 32), **overrides})
    return SNGANResNetGenerator(**{"latent_dim": 128, "event_shape": (3, 32, 32), **overrides})
