"""A density-based anomaly detector with the scikit-learn / PyOD interface.

The detector trains a neural random field p(x) ∝ exp(-E(x)) on (mostly) normal data and
uses the energy E(x) as the anomaly score: higher = less probable = more anomalous
(Inclusive-NRF section V-C). It follows PyOD's ``BaseDetector`` conventions without
depending on PyOD:

* ``fit(X)`` sets ``decision_scores_`` (training energies), ``threshold_`` (their
  ``100 (1 - contamination)`` th percentile) and ``labels_`` (0 inlier, 1 outlier);
* ``decision_function(X)`` returns energies, ``predict(X)`` 0/1 labels,
  ``predict_proba(X, method="linear" | "unify")`` two columns, ``predict_confidence(X)``;
* ``score_samples(X)`` returns ``-E(x)``, scikit-learn's sign (higher = more normal).

Every constructor argument left at ``None`` takes the value of the ``network`` preset
(:mod:`nrf.applications.anomaly.presets`: the paper's Tables VII and VIII). The detector
resolves its arguments into a :class:`DetectorSettings` (component specs), builds the
objective, sampler and optimizers from the registries and trains with the one training
loop (:mod:`nrf.training.loop`), as ``nrf train`` does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from nrf._checks import check_choice, check_positive_int
from nrf.applications.anomaly.settings import (
    DetectorSettings,
    build_objective,
    needs_noise_rule,
    noise_levels,
    rescales_input,
    resolve_settings,
)
from nrf.applications.anomaly.thresholds import outlier_confidence, outlier_proba, score_threshold
from nrf.data.batch import Batch
from nrf.generators import LatentGenerator
from nrf.metrics.kde_bandwidth import likelihood_cv_bandwidth
from nrf.metrics.training_health import history_flags
from nrf.objectives import Objective
from nrf.registry import plain
from nrf.samplers import SAMPLERS
from nrf.training import checkpoint as ckpt
from nrf.training.ensemble import member_energies
from nrf.training.health import TrainingHealth
from nrf.training.loop import Callback, DataOrder, EpochHistory, Loop, Streams, TrainingDiverged
from nrf.training.recovery import fit_recovery
from nrf.training.run import resolve_device

FORMAT = "nrf-detector/1"
MAX_CHECKS = 25  # health checks per fit: every ceil(epochs / 25) epochs, and the last
CHAIN_STEPS = 200  # steps of each diagnostic chain (the second half traced)
NOISE_REFERENCE_ROWS = 4000  # training rows that are the kernel centres of the noise rule
NOISE_HELDOUT_ROWS = 1000  # held-out rows that score each bandwidth


class BestHeldout(Callback):
    """Keeps the model state (with the parameter average applied) of the checked epoch
    with the lowest held-out loss (``heldout_loss`` of the history, written by
    :class:`~nrf.training.health.TrainingHealth` just before)."""

    def __init__(self, history: EpochHistory) -> None:
        self.history = history
        self.best = math.inf
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        if loop.step % loop.order.per_epoch or not self.history.epochs:
            return
        loss = self.history.epochs[-1].get("heldout_loss")
        if loss is None or not loss < self.best:
            return
        self.best, self.epoch = loss, len(self.history.epochs)
        with loop.averaged():
            self.state = {k: v.detach().clone() for k, v in loop.objective.state_dict().items()}


# entries of a fit's checkpoint fingerprint, in the words of the detector's arguments
def _saved_problem(tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> str | None:
    """What is structurally wrong with a detector save's content (None when nothing)."""
    expected = {
        "params": (dict, "a table of parameters"),
        "custom_networks": (list, "a list of 'energy' / 'generator'"),
        "input_shape": (list, "a list of positive integers"),
        "history": (list, "a list of per-epoch metrics"),
        "n_iter": (int, "an integer >= 0"),
    }
    for key, (kind, what) in expected.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return ckpt.bad_field(key, what, value)
    if not set(state["custom_networks"]) <= {"energy", "generator"}:
        return ckpt.bad_field("custom_networks", "'energy' / 'generator'", state["custom_networks"])
    shape = state["input_shape"]
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        return ckpt.bad_field("input_shape", "a list of positive integers", shape)
    for epoch in state["history"]:
        if not isinstance(epoch, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in epoch.values()
        ):
            return ckpt.bad_field("history", "per-epoch tables of numbers", epoch)
    scores = tensors.get("decision_scores")
    if scores is None or scores.dim() != 1 or not scores.is_floating_point():
        return "tensor 'decision_scores': expected a 1-d floating-point tensor"
    if not any(k.startswith("model/") for k in tensors):
        return "no model/ tensors"
    return None


_FINGERPRINT_NAMES = {"settings": "settings", "seed": "random_state", "n_estimators": "n_estimators",
                      "networks": "networks", "data": "rows of X", "shape": "shape of X"}  # fmt: skip


class NRFDetector(BaseEstimator):
    """Anomaly detector scoring rows by the energy of a neural random field.

    Parameters
    ----------
    contamination:
        Expected fraction of outliers in the training data, in (0, 0.5]; sets ``threshold_``.
    method:
        The learning method: ``"dsm"`` (denoising score matching, one or several noise
        levels), ``"ssm"`` (sliced score matching), ``"nce"`` (noise-contrastive estimation
        against a Gaussian fitted to the data), ``"inclusive"`` (Inclusive-NRF: potential +
        auxiliary generator, Algorithm 1) or ``"cd"`` (contrastive divergence:
        ``revision_steps`` sampler steps from the data); ``None`` for the preset's (``dsm``
        for the stable presets, ``inclusive`` for the paper's).
    network:
        Preset networks and hyper-parameters: ``"auto"`` (``"mnist-stable"`` for rows of
        28 x 28 images, else ``"tabular-stable"``), ``"tabular-stable"`` /
        ``"mnist-stable"`` (the methods and settings chosen on validation splits, see
        ``docs/experiments/stable-detector.md``), or the paper's ``"tabular"`` (Table VII;
        any number of features) and ``"mnist"`` (Table VIII; 784 features or 28 x 28 images).
    energy, generator:
        Your own networks instead of the preset's (an energy module mapping a batch to
        ``(batch,)`` energies; a :class:`~nrf.generators.LatentGenerator`). They are
        copied at ``fit``; the originals are never trained.
    potential_init:
        Weight normalization of the preset potential: ``"data"`` (data-dependent
        initialization, trainable scales: the paper), ``"data-fixed"`` (the same
        initialization, hidden scales then fixed: the authors' MNIST code) or ``"unit"`` (no
        data-dependent initialization, hidden scales fixed at 1, i.e. unit-norm weight rows:
        the authors' KDDCUP99 code); ``None`` for the preset's choice. A custom ``energy``
        is used as given.
    sampler:
        Revision / negative-phase sampler: ``"sgld"`` (Langevin, Eq. 7) or ``"sghmc"`` (Eq. 8).
    step_size, beta, noise_scale:
        Sampler step delta, SGHMC friction beta, and the noise standard deviation:
        ``"paper"`` for the paper's sqrt(2 delta) (SGLD) or sqrt(2 beta delta) (SGHMC), a
        number (``0``: the authors' noiseless revision), or ``None`` for the preset's
        choice (see :mod:`nrf.applications.anomaly.presets`).
    revision_steps:
        L, the revision steps per batch (k for ``method="cd"``).
    revision:
        ``"x-only"`` (the authors' code; the default) or ``"paper"`` (revise x and h with
        Eq. 13). The paper's joint revision needs ``sigma > 0`` and a step below about
        sigma^2 to be stable: its x-drift holds -(x - g(h)) / sigma^2.
    sigma:
        Output noise of the generator q(x | h): 0 (deterministic, the authors' KDDCUP99
        code), 0.1 (their MNIST code, which starts the revision from g(h) + 0.1 noise);
        must be > 0 for ``revision="paper"``; ``None`` for the preset's choice.
    alpha_p:
        Weight of the potential-control loss alpha_p mean E(x_data)^2 (for ``"cd"``, the
        energy-magnitude regularizer of both phases).
    control:
        Where the potential-control loss applies (``method="inclusive"``): ``"data"``
        (alpha_p mean E(x_data)^2, the paper) or ``"both"`` (alpha_p (mean E(x_data)^2 +
        mean E(x_revised)^2), IGEBM's regularizer, which also bounds the energy of the
        revised samples and so the data-sample energy gap); ``None`` for the preset's choice.
    epochs, batch_size, lr, lr_generator, betas:
        Optimizer settings and the length of training (``betas`` for Adam only).
    optimizer:
        ``"adam"`` (the paper's tables) or ``"rmsprop"`` (the authors' MNIST code: RMSprop
        with decay 0.9 and epsilon 1e-6); ``None`` for the preset's choice.
    clamp:
        ``(low, high)``: project the revised samples onto this box after every revision
        step (the authors' MNIST code clips pixels to ``(0, 1)``); ``"off"``; ``None`` for
        the preset's choice (``(0, 1)`` for ``"mnist"``, none for ``"tabular"``).
    lr_schedule:
        ``"constant"`` (the paper) or ``"cosine"``: both learning rates follow
        lr_t = lr (1 + cos(pi t / T)) / 2 over the T iterations of the fit
        (:class:`~nrf.training.loop.CosineLR`), so that the final model is not a snapshot
        of a still-moving adversarial game; ``None`` for the preset's choice.
    ema:
        Keep the exponential moving average of the energy's parameters over the
        iterations (decay in (0, 1), e.g. 0.999) instead of the last iterate; ``"off"`` for
        the last iterate; ``None`` for the preset's choice.
    n_estimators:
        Independently initialized models trained side by side as one batched network
        (:class:`~nrf.energies.BatchedMLPEnergy`, one block of each batch per model, each
        model with its own data order and sampler noise); preset networks only. With more
        than one, the anomaly score is the mean over the models of their standardized
        energies, (E_k(x) - m_k) / s_k with m_k, s_k the mean and standard deviation of
        model k's energies on the training rows; with one, the energy itself. A fit costs
        about ``n_estimators`` times one, less the per-operation overhead of small networks.
    objective_options:
        Options of the method's objective over the preset's (e.g. ``{"sigmas": [0.05, 0.1]}``
        for ``dsm`` instead of the levels chosen from the data, ``{"noise_ladder": [2.0],
        "noise_unit": None}`` for twice the chosen level with the rows left as scaled,
        ``{"noise_ratio": 8}`` for ``nce``, ``{"persistent": 10000}`` for
        persistent chains of ``inclusive``); checked by the objective, errors name the option.
    scaling:
        ``"standard"`` (each feature minus its training mean, over its standard deviation),
        ``"minmax"`` (minus its training minimum, over its range) or ``"none"``; constant
        features keep scale 1; ``None`` for the preset's (the paper presets: none).
    validation_fraction:
        Share of the training rows held out (at random, by ``random_state``) for the
        held-out diagnostics and ``selection="best"``; the final scores still cover every
        row. ``None`` for the preset's (0.1 for the stable presets, 0 for the paper's).
    selection:
        ``"final"``: keep the model of the last iteration (its parameter average);
        ``"best"``: the checked epoch with the lowest loss on the held-out rows (dsm, ssm and
        nce only; needs ``validation_fraction > 0``). Test data is never used.
    diagnostic_chains:
        Langevin chains (the preset's ``diagnostic_sampler``, 200 steps) run at each check
        for the R-hat / ESS / kernel Stein discrepancy figures; 0 for none.
    checkpoint_dir:
        A folder for checkpoints of the fit (optional; for long fits): every
        ``checkpoint_every`` iterations (default: every epoch) the loop's whole state is
        written there (the newest 3 kept, other files left alone); a fit with the same
        settings on the same rows continues from the newest valid checkpoint (e.g. after a
        crash), and a diverged iteration (non-finite loss, gradient or metric) rolls back to
        the newest checkpoint with the learning rates halved, at most ``max_rollbacks``
        times, with a ``UserWarning`` each time.
        Without it a divergence ends the fit with :class:`~nrf.training.loop.TrainingDiverged`.
    checkpoint_every, max_rollbacks:
        See ``checkpoint_dir``.
    device:
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    random_state:
        Seed (int), ``numpy.random.RandomState`` or ``None``.
    verbose:
        Show a progress bar while fitting.

    Attributes
    ----------
    decision_scores_, threshold_, labels_:
        Training scores (energies), the outlier threshold and the training labels (0/1).
    member_stats_:
        ``(n_estimators, 2)``: each model's training-energy mean and standard deviation
        (the standardization of the combined score).
    n_features_in_, input_shape_:
        Features per row, and the shape of one row as given to ``fit``.
    objective_:
        The trained :class:`~nrf.objectives.Objective` (networks in ``objective_.energy``).
    history_:
        Per-epoch means of the training losses and, at every checked epoch (every
        ``ceil(epochs / 25)``-th and the last), the training-health figures of
        :mod:`nrf.training.health` (``energy_mean``, ``energy_shift``, ``rank_stability``,
        ``tail_stability``, ``heldout_shift``, ``heldout_rank``, ``heldout_loss``, ``ess``, ``rhat``, ``ksd``,
        ``energy_gap``); ``n_iter_`` the iterations run.
    health_flags_:
        The flags the diagnostics raise on the last checked epochs
        (:func:`nrf.metrics.training_health.history_flags`), each also issued as a
        ``UserWarning`` by ``fit``; empty for a healthy fit.
    selected_epoch_:
        The epoch whose model is kept (the last one with ``selection="final"``).
    scale_offset_, scale_:
        The per-feature scaling (``None`` with ``scaling="none"`` and given noise levels);
        with levels chosen from the data, ``scale_`` includes the division by the network's
        input unit.
    noise_levels_, noise_selection_:
        The dsm noise levels in the network's input units, and what chose them: the
        bandwidth h (in the scaled features' units) of the Gaussian kernel estimate on the
        training rows with the largest held-out log-likelihood, ``input_unit`` (the
        preset's ``noise_unit`` times the reference level h * ``noise_ladder[0]``; the rows
        are divided by it), ``at_edge``, and the ``grid`` of bandwidths with their
        ``log_likelihood`` (:mod:`nrf.metrics.kde_bandwidth`). ``None`` when the levels
        were given (``objective_options={"sigmas": [...]}``) or the method is not dsm.

    The preset's epochs are raised to at least its ``min_iterations`` (1,000) updates, so a
    fit on a few hundred rows trains as long as a fit on many; ``epochs`` given explicitly
    are kept as given.
    """

    scale_offset_: np.ndarray | None
    scale_: np.ndarray | None
    noise_levels_: tuple[float, ...] | None
    noise_selection_: dict[str, Any] | None

    def __init__(
        self,
        contamination: float = 0.1,
        *,
        method: str | None = None,
        network: str = "auto",
        energy: torch.nn.Module | None = None,
        generator: LatentGenerator | None = None,
        potential_init: str | None = None,
        sampler: str = "sghmc",
        step_size: float | None = None,
        beta: float | None = None,
        noise_scale: float | str | None = None,
        revision_steps: int | None = None,
        revision: str = "x-only",
        sigma: float | None = None,
        alpha_p: float | None = None,
        control: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        lr_generator: float | None = None,
        betas: tuple[float, float] | None = None,
        optimizer: str | None = None,
        clamp: tuple[float, float] | str | None = None,
        lr_schedule: str | None = None,
        ema: float | str | None = None,
        n_estimators: int = 1,
        objective_options: dict[str, Any] | None = None,
        scaling: str | None = None,
        validation_fraction: float | None = None,
        selection: str = "final",
        diagnostic_chains: int = 16,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        max_rollbacks: int = 3,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.contamination = contamination
        self.method = method
        self.network = network
        self.energy = energy
        self.generator = generator
        self.potential_init = potential_init
        self.sampler = sampler
        self.step_size = step_size
        self.beta = beta
        self.noise_scale = noise_scale
        self.revision_steps = revision_steps
        self.revision = revision
        self.sigma = sigma
        self.alpha_p = alpha_p
        self.control = control
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_generator = lr_generator
        self.betas = betas
        self.optimizer = optimizer
        self.clamp = clamp
        self.lr_schedule = lr_schedule
        self.ema = ema
        self.n_estimators = n_estimators
        self.objective_options = objective_options
        self.scaling = scaling
        self.validation_fraction = validation_fraction
        self.selection = selection
        self.diagnostic_chains = diagnostic_chains
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.max_rollbacks = max_rollbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # --- settings --------------------------------------------------------------------

    def _settings(self, input_shape: tuple[int, ...] | None = None) -> DetectorSettings:
        """The constructor arguments, validated, with the preset's values for ``None``
        (``network="auto"`` decided by ``input_shape``, or the fitted rows' shape)."""
        if input_shape is None:
            input_shape = getattr(self, "input_shape_", None)
        return resolve_settings(self, input_shape)

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    # --- input -----------------------------------------------------------------------

    def _recovery_settings(self) -> tuple[int | None, int]:
        """``checkpoint_every`` and ``max_rollbacks``, checked (with ``checkpoint_dir``)."""
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, str | os.PathLike):
            raise TypeError(f"checkpoint_dir must be a folder path or None, got {self.checkpoint_dir!r}")
        every = self.checkpoint_every
        return (
            None if every is None else check_positive_int("checkpoint_every", every),
            check_positive_int("max_rollbacks", self.max_rollbacks, allow_zero=True),
        )

    def _validate(self, X: Any, *, reset: bool) -> np.ndarray:
        """``X`` as a float32 array of shape ``(n, n_features)``, with scikit-learn's errors."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        ndim = getattr(X, "ndim", None)
        if ndim is None and isinstance(X, (list, tuple)):
            ndim = np.ndim(X) if all(np.ndim(v) == 0 for v in X[:1]) else None
        if ndim in (0, 1):  # scikit-learn's message would print the whole array
            raise ValueError(
                f"X: Expected 2D array (n_samples, n_features) or images (n, C, H, W), got a "
                f"{ndim}-D array of shape {np.shape(X)}. Reshape your data: X.reshape(-1, 1) for one "
                "feature or X.reshape(1, -1) for one row"
            )
        arr = check_array(X, allow_nd=True, dtype=[np.float32, np.float64], input_name="X")
        shape = tuple(arr.shape[1:])
        if reset:
            self.input_shape_ = shape
            self.n_features_in_ = math.prod(shape)
        elif arr.ndim > 2 and shape not in (tuple(self.input_shape_), tuple(self.event_shape_)):
            raise ValueError(
                f"X has rows of shape {shape}, but {type(self).__name__} was fitted on rows of shape "
                f"{tuple(self.input_shape_)} (give rows of that shape, of the network's "
                f"{tuple(self.event_shape_)}, or flattened to {self.n_features_in_} features)"
            )
        flat = arr.reshape(arr.shape[0], -1)
        if not reset and flat.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {flat.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        with np.errstate(over="ignore"):  # overflow is reported below, by row
            data = np.ascontiguousarray(flat, dtype=np.float32)
        if arr.dtype != np.float32 and not np.isfinite(data).all():  # finite float64 beyond float32
            row = int(np.nonzero(~np.isfinite(data).all(axis=1))[0][0])
            raise ValueError(
                f"X has values too large for float32 (|x| > {np.finfo(np.float32).max:.3g}; first in "
                f"row {row}); scale the data first"
            )
        return data

    # --- model -----------------------------------------------------------------------

    def _build(self, s: DetectorSettings, n_features: int) -> Objective:
        return build_objective(self, s, n_features, getattr(self, "noise_levels_", None))

    def _choose_noise(
        self, s: DetectorSettings, scaled: np.ndarray, train_rows: np.ndarray, heldout_rows: np.ndarray,
        seed: int,
    ) -> np.ndarray:  # fmt: skip
        """Choose the dsm noise levels from the scaled training rows when they are ``"auto"``
        and return the rows as the network sees them.

        The bandwidth h of the Gaussian kernel estimate on up to 4,000 training rows that
        gives up to 1,000 held-out rows (the validation rows, or a tenth of the training rows
        when none are held out) the largest mean log-density
        (:func:`~nrf.metrics.kde_bandwidth.likelihood_cv_bandwidth`), times the preset's
        ``noise_ladder`` (or ``objective_options``'), gives the levels. With ``noise_unit`` u, the rows are
        then divided by u times the reference level (folded into ``scale_``), so the network
        sees the reference level as 1 / u input units and ``noise_levels_`` are in those
        units. Sets ``noise_levels_`` and ``noise_selection_`` (``None`` when the levels
        are given)."""
        self.noise_levels_ = self.noise_selection_ = None
        if not needs_noise_rule(s):
            return scaled
        rs = np.random.RandomState((seed + 1) % (2**32 - 1))
        rows = rs.permutation(train_rows)
        held = rs.permutation(heldout_rows)
        if held.size == 0:  # no validation rows: hold out a tenth of the training rows
            count = max(1, rows.size // 10)
            held, rows = rows[:count], rows[count:]
        reference = torch.from_numpy(scaled[rows[:NOISE_REFERENCE_ROWS]])
        choice = likelihood_cv_bandwidth(reference, torch.from_numpy(scaled[held[:NOISE_HELDOUT_ROWS]]))
        levels = noise_levels(s, choice.bandwidth)
        unit = 1.0
        if rescales_input(s):
            unit = float(s.noise_unit) * levels[0]  # type: ignore[arg-type]
            spread: np.ndarray | None = self.scale_
            if spread is None:  # scaling="none": the rule's rescaling alone
                self.scale_offset_ = np.zeros(scaled.shape[1])
                spread = np.ones(scaled.shape[1])
            self.scale_ = spread * unit
            scaled = (scaled / unit).astype(np.float32)
        self.noise_levels_ = tuple(level / unit for level in levels)
        self.noise_selection_ = {
            "bandwidth": choice.bandwidth, "at_edge": choice.at_edge, "input_unit": unit,
            "grid": list(choice.grid), "log_likelihood": list(choice.log_likelihood),
        }  # fmt: skip
        return scaled

    # --- fitting ---------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> NRFDetector:
        """Train on ``X`` (``y`` is ignored; it is there for the pipeline API)."""
        data = self._validate(X, reset=True)
        s = self._settings(tuple(self.input_shape_))
        if data.shape[0] < 2:
            raise ValueError(
                f"X must have at least 2 samples to fit (batch statistics), got n_samples = {data.shape[0]}"
            )
        chains = check_positive_int("diagnostic_chains", self.diagnostic_chains, allow_zero=True)
        self._fit_scaling(data, s.scaling)
        scaled = self._scale(data)
        device = self._device()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        streams = Streams(seed)
        train_rows, heldout_rows = self._holdout(scaled.shape[0], s.validation_fraction, seed)
        scaled = self._choose_noise(s, scaled, train_rows, heldout_rows, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # network initialization, without touching the caller's stream
            objective = self._build(s, data.shape[1])
        shape = s.preset.event_shape or (data.shape[1],)
        every_row = torch.from_numpy(scaled).to(device).view(-1, *shape)
        tensor = every_row[torch.from_numpy(train_rows).to(device)]
        objective.to(device)
        per_epoch = DataOrder.batches_per_epoch(tensor.shape[0], s.batch_size)
        steps = s.iterations(tensor.shape[0], per_epoch)
        optim = {g: s.optim[g] for g in objective.optimizer_groups()}
        loop = Loop(
            objective, Batch(tensor), optim, batch_size=s.batch_size, steps=steps,
            generator=streams.sampler(device), data_generator=streams.data(), device=device,
            ema=s.ema, lr_schedule=s.lr_schedule,
        )  # fmt: skip
        init_rows = streams.init_rows(tensor.shape[0], 1000)
        loop.initialize(init_rows)  # the same rows are the health checks' reference rows
        history = EpochHistory()
        epochs = math.ceil(steps / per_epoch)
        health = TrainingHealth(
            history, tensor[init_rows.to(device)],
            every_row[torch.from_numpy(heldout_rows[:2000]).to(device)] if heldout_rows.size else None,
            every=max(1, math.ceil(epochs / MAX_CHECKS)), chains=chains, chain_steps=CHAIN_STEPS,
            sampler=SAMPLERS.build(s.diagnostic_sampler, key="diagnostic_sampler"), seed=seed,
        )  # fmt: skip
        callbacks: list[Callback] = [history, health]
        best = BestHeldout(history) if s.selection == "best" else None
        if best is not None:
            callbacks.append(best)
        if self.checkpoint_dir is not None:
            fingerprint = {"settings": s.to_config(), "seed": seed, "n_estimators": self.n_estimators,
                           "networks": repr(objective), "data": hashlib.sha256(data.tobytes()).hexdigest(),
                           "shape": list(data.shape)}  # fmt: skip
            every, max_rollbacks = self._recovery_settings()
            callbacks += fit_recovery(
                Path(os.fspath(self.checkpoint_dir)),
                per_epoch if every is None else every,
                max_rollbacks,
                loop, history, fingerprint, _FINGERPRINT_NAMES, warn_as="NRFDetector.fit",
            )  # fmt: skip
        try:
            loop.run(callbacks, progress=bool(self.verbose), describe=lambda step: (
                f"in epoch {step // per_epoch + 1}, iteration {step + 1}"))  # fmt: skip
        except TrainingDiverged as exc:
            raise TrainingDiverged(f"{exc}; lower the learning rates or the sampler's step_size") from None
        loop.finish()
        self.selected_epoch_ = len(history.epochs)
        if best is not None and best.state is not None:
            objective.load_state_dict(best.state)
            self.selected_epoch_ = best.epoch
        objective.eval()
        self.objective_ = objective
        self.event_shape_ = tuple(shape)
        self.history_ = history.epochs
        self.n_iter_ = loop.step
        self.health_flags_ = self._health_flags()
        energies = self._member_energies(scaled, rows="the training data")
        self.member_stats_ = np.stack([energies.mean(1), energies.std(1)], axis=1)
        self._set_scores(self._combine(energies))
        return self

    @staticmethod
    def _holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and the held-out rows (none held out below 20 rows)."""
        count = round(fraction * n) if n >= 20 else 0
        order = np.random.RandomState(seed % (2**32 - 1)).permutation(n)
        return np.sort(order[count:]), np.sort(order[:count])

    def _fit_scaling(self, data: np.ndarray, scaling: str) -> None:
        """Per-feature offset and scale of the training rows: mean and standard deviation
        (``scaling="standard"``), minimum and range (``"minmax"``), or none. Features whose
        spread is below 1e-6 of their magnitude (constant) keep scale 1."""
        if scaling == "none":
            self.scale_offset_ = self.scale_ = None
            return
        if scaling == "minmax":
            offset = data.min(axis=0).astype(np.float64)
            spread = data.max(axis=0).astype(np.float64) - offset
        else:
            offset = data.mean(axis=0, dtype=np.float64)
            spread = data.std(axis=0, dtype=np.float64)
        spread[spread <= 1e-6 * (1.0 + np.abs(offset))] = 1.0
        self.scale_offset_, self.scale_ = offset, spread

    def _scale(self, data: np.ndarray) -> np.ndarray:
        if getattr(self, "scale_offset_", None) is None:
            return data
        return ((data - self.scale_offset_) / self.scale_).astype(np.float32)

    def _health_flags(self) -> list[str]:
        """The diagnostics' flags of the fit's last checked epochs, each also a ``UserWarning``."""
        flags = history_flags([e for e in self.history_ if "energy_mean" in e])
        for flag in flags:
            warnings.warn(f"NRFDetector.fit: the fit ends in a state its diagnostics flag: {flag}",
                          UserWarning, stacklevel=3)  # fmt: skip
        return flags

    def _set_scores(self, scores: np.ndarray) -> None:
        self.decision_scores_ = scores
        self.threshold_ = score_threshold(scores, float(self.contamination))
        self.labels_ = (scores > self.threshold_).astype(int)
        self._mu = float(np.mean(scores))
        self._sigma = float(np.std(scores))

    def _member_energies(self, data: np.ndarray, rows: str = "X", chunk: int = 4096) -> np.ndarray:
        """Energies of every model, shape ``(n_estimators, n)``; a ``FloatingPointError``
        naming the first of the ``rows`` where a model's energy is not finite."""
        objective = self.objective_
        ref = next(objective.energy.parameters())
        out = []
        for start in range(0, data.shape[0], chunk):
            x = torch.from_numpy(data[start : start + chunk]).to(ref.device, ref.dtype)
            out.append(member_energies(objective, x.view(-1, *self.event_shape_)).double().cpu())
        energies = torch.cat(out, dim=1).numpy() if out else np.zeros((self.n_estimators, 0))
        bad = ~np.isfinite(energies).all(axis=0)
        if bad.any():
            raise FloatingPointError(
                f"the model gives non-finite energies on {int(bad.sum())} rows of {rows} (first: row "
                f"{int(np.nonzero(bad)[0][0])}); are these rows far outside the training data's range?"
            )
        return energies

    def _combine(self, energies: np.ndarray) -> np.ndarray:
        """One model: its energies; several: the mean of their standardized energies."""
        if energies.shape[0] == 1:
            return energies[0]
        mean, std = self.member_stats_[:, :1], self.member_stats_[:, 1:]
        return ((energies - mean) / np.where(std > 0, std, 1.0)).mean(0)

    def _energies(self, data: np.ndarray) -> np.ndarray:
        return self._combine(self._member_energies(self._scale(data)))

    # --- scoring ---------------------------------------------------------------------

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores, higher = more anomalous, shape ``(n,)``: the energies E(x), or with
        ``n_estimators > 1`` the mean of the models' standardized energies."""
        check_is_fitted(self, "decision_scores_")
        return self._energies(self._validate(X, reset=False))

    def score_samples(self, X: Any) -> np.ndarray:
        """-E(x), the unnormalized log-density: scikit-learn's sign (higher = more normal)."""
        return -self.decision_function(X)

    def predict(self, X: Any, return_confidence: bool = False) -> Any:
        """0 (inlier) / 1 (outlier): score above ``threshold_``; with ``return_confidence``,
        also :meth:`predict_confidence`."""
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        if return_confidence:
            return labels, self._confidence(scores)
        return labels

    def predict_proba(self, X: Any, method: str = "linear", return_confidence: bool = False) -> Any:
        """Probabilities ``(n, 2)`` of inlier / outlier (``"linear"`` or ``"unify"``, as PyOD)."""
        check_choice("method", method, ("linear", "unify"))
        scores = self.decision_function(X)
        proba = outlier_proba(scores, self.decision_scores_, method)
        if return_confidence:
            return proba, self._confidence(scores)
        return proba

    def predict_confidence(self, X: Any) -> np.ndarray:
        """Confidence in [0, 1] of each predicted label (ExCeeD, as PyOD)."""
        return self._confidence(self.decision_function(X))

    def _confidence(self, scores: np.ndarray) -> np.ndarray:
        return outlier_confidence(scores, self.decision_scores_, float(self.contamination), self.threshold_)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then the training labels ``labels_``."""
        return np.asarray(self.fit(X, y).labels_)

    # --- persistence -----------------------------------------------------------------

    def save(self, path: Any, *, overwrite: bool = False) -> None:
        """Write the fitted detector as the folder ``path`` (safetensors + JSON, both hashed;
        written atomically).

        ``path`` must be new or an empty folder; an earlier detector save there is replaced
        only with ``overwrite=True``. Anything else (a file, a folder holding other files)
        is refused with :class:`FileExistsError`: saving never removes what it did not write.
        """
        check_is_fitted(self, "decision_scores_")
        target = Path(os.fspath(path))
        if ckpt.is_checkpoint(target):
            try:
                saved = ckpt.load_checkpoint(target)[1].get("detector")
            except ckpt.CheckpointError:
                saved = None
            if saved is None:
                raise FileExistsError(
                    f"{target}: holds an nrf checkpoint that is not a detector save; not replacing it"
                )
            if not overwrite:
                raise FileExistsError(
                    f"{target}: holds a saved detector already; pass overwrite=True to replace it"
                )
        params = {k: plain(v) for k, v in self.get_params().items()}
        custom = [name for name in ("energy", "generator") if params[name] is not None]
        for name in custom:
            params[name] = None
        rs = params["random_state"]
        if rs is not None and not isinstance(rs, int):
            params["random_state"] = None
        if params["checkpoint_dir"] is not None:
            params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])
        tensors = {f"model/{k}": v.detach().cpu() for k, v in self.objective_.state_dict().items()}
        tensors["decision_scores"] = torch.from_numpy(np.asarray(self.decision_scores_, dtype=np.float64))
        tensors["member_stats"] = torch.from_numpy(np.asarray(self.member_stats_, dtype=np.float64))
        if self.scale_offset_ is not None:
            tensors["scale_offset"] = torch.from_numpy(np.asarray(self.scale_offset_, dtype=np.float64))
            tensors["scale"] = torch.from_numpy(np.asarray(self.scale_, dtype=np.float64))
        state = {
            "detector": FORMAT,
            "params": params,
            "custom_networks": custom,
            "input_shape": list(self.input_shape_),
            "history": self.history_,
            "n_iter": self.n_iter_,
            "selected_epoch": self.selected_epoch_,
            "health_flags": list(self.health_flags_),
            "noise_levels": None if self.noise_levels_ is None else list(self.noise_levels_),
            "noise_selection": self.noise_selection_,
        }
        json.dumps(state)  # fail before writing anything if a parameter is not JSON-able
        ckpt.save_checkpoint(target, tensors, state)

    @classmethod
    def load(
        cls,
        path: Any,
        *,
        energy: torch.nn.Module | None = None,
        generator: LatentGenerator | None = None,
        device: str | None = None,
    ) -> NRFDetector:
        """Read a detector written by :meth:`save`. Pass ``energy`` / ``generator`` modules of
        the same architecture if it was fitted with your own networks, and ``device`` to run
        it somewhere else than where it was fitted (e.g. ``"cpu"`` for a CUDA-fitted one)."""
        if not Path(os.fspath(path)).exists():
            raise FileNotFoundError(f"{path}: no such folder (a detector save is a folder written by save())")
        tensors, state = ckpt.load_checkpoint(path)
        if state.get("detector") != FORMAT:
            raise ValueError(f"{path}: not a saved NRFDetector (detector format {state.get('detector')!r})")
        problem = _saved_problem(tensors, state)
        if problem is not None:
            raise ckpt.CheckpointError(f"{path}: {problem}; not a detector this version wrote")
        params = dict(state["params"])
        for key in ("betas", "clamp"):
            if isinstance(params.get(key), list):
                params[key] = tuple(params[key])
        for name in ("energy", "generator"):
            if name not in state["custom_networks"] and params.get(name) is not None:
                raise ckpt.CheckpointError(
                    f"{path}: {ckpt.bad_field(f'params.{name}', 'null', params[name])}"
                )
        given = {"energy": energy, "generator": generator}
        for name in state["custom_networks"]:
            if given[name] is None:
                raise ValueError(f"{path} was fitted with a custom {name}; pass {name}= to load it")
            params[name] = given[name]
        if device is not None:
            params["device"] = device
        known = set(cls._get_param_names())
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"{path}: saved parameter {unknown[0]!r} is not one of NRFDetector's")
        det = cls(**params)
        det.input_shape_ = tuple(state["input_shape"])
        levels = state.get("noise_levels")
        if levels is not None and (
            not isinstance(levels, list) or not levels
            or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in levels)
        ):  # fmt: skip
            raise ckpt.CheckpointError(
                f"{path}: {ckpt.bad_field('noise_levels', 'positive numbers', levels)}"
            )
        det.noise_levels_ = None if levels is None else tuple(float(v) for v in levels)
        det.noise_selection_ = state.get("noise_selection")
        det.n_features_in_ = math.prod(det.input_shape_)
        try:
            s = det._settings()
            det._recovery_settings()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: the saved parameters are not valid: {exc}") from None
        if needs_noise_rule(s) and det.noise_levels_ is None:
            raise ckpt.CheckpointError(
                f"{path}: the dsm noise levels chosen at fit are missing (saved by an older nrf); "
                "refit the detector"
            )
        objective = det._build(s, det.n_features_in_)
        model = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            objective.load_state_dict(model)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise ValueError(
                f"{path}: the saved tensors do not fit the networks its parameters build: {detail}"
            ) from None
        objective.to(det._device())
        objective.eval()
        det.objective_ = objective
        det.event_shape_ = tuple(s.preset.event_shape or (det.n_features_in_,))
        det.history_ = state["history"]
        det.n_iter_ = state["n_iter"]
        det.selected_epoch_ = int(state.get("selected_epoch", len(det.history_)))
        det.health_flags_ = [str(f) for f in state.get("health_flags", [])]
        if ("scale_offset" in tensors) != (s.scaling != "none" or rescales_input(s)):
            raise ckpt.CheckpointError(f"{path}: the saved scaling does not match scaling={s.scaling!r}")
        det.scale_offset_ = tensors["scale_offset"].numpy() if "scale_offset" in tensors else None
        det.scale_ = tensors["scale"].numpy() if "scale" in tensors else None
        for name in ("scale_offset_", "scale_"):
            value = getattr(det, name)
            if value is not None and value.shape != (det.n_features_in_,):
                raise ckpt.CheckpointError(
                    f"{path}: tensor {name[:-1]!r} does not have {det.n_features_in_} values"
                )
        scores = tensors["decision_scores"].numpy()
        if "member_stats" in tensors:
            det.member_stats_ = tensors["member_stats"].numpy()
        else:  # written before n_estimators existed: one model
            det.member_stats_ = np.array([[scores.mean(), scores.std()]])
        det._set_scores(scores)
        return det

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"  # as PyOD's BaseDetector (labels are 0 / 1)
        tags.input_tags.allow_nan = False
        tags.input_tags.three_d_array = True
        return tags
