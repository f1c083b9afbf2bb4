"""Data: synthetic mixtures with known modes and loaders for the papers' real data sets.

Real files are looked up in the explicit ``root``, then ``$NRF_DATA_DIR``, then
``~/.cache/nrf`` (see :mod:`nrf.data.paths`); loaders never download.
"""

from nrf.data.batch import Batch
from nrf.data.cifar import RestrictedUnpickler, load_cifar10
from nrf.data.digits import load_digits
from nrf.data.errors import ChecksumError, DataFormatError, DataNotFoundError
from nrf.data.kddcup import KDDCup99, load_kddcup99
from nrf.data.mnist import ImageSet, load_mnist, read_idx
from nrf.data.paths import ENV_VAR, data_roots
from nrf.data.registry import DATASETS, dataset_status, download
from nrf.data.synthetic import MixtureData, bimodal1d, gmm32, gmm32_centres, grid25, ring8

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "Batch",
    "ChecksumError",
    "DataFormatError",
    "DataNotFoundError",
    "ImageSet",
    "KDDCup99",
    "MixtureData",
    "RestrictedUnpickler",
    "bimodal1d",
    "data_roots",
    "dataset_status",
    "download",
    "gmm32",
    "gmm32_centres",
    "grid25",
    "load_cifar10",
    "load_digits",
    "load_kddcup99",
    "load_mnist",
    "read_idx",
    "ring8",
]
