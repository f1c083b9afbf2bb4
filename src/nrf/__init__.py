"""nrf: neural random fields (energy-based models) in PyTorch.

Subpackages: :mod:`nrf.data` (synthetic sets and real-format loaders), :mod:`nrf.nn`
(weight-normalized layers), :mod:`nrf.energies` (energies, lower = more probable),
:mod:`nrf.generators` (auxiliary latent generators).
"""

__version__ = "0.1.0"
