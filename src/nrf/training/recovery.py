"""Recovery for any fit of the loop: step checkpoints in a folder and the divergence guard
that rolls back to them (used by the run-directory Trainer and by estimators)."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nrf.training import checkpoint as ckpt
from nrf.training.config import DivergenceSection
from nrf.training.lock import FolderLock
from nrf.training.loop import Callback, DivergenceError, EpochHistory, Loop, TrainingDiverged

Restore = Callable[[dict[str, torch.Tensor], dict[str, Any]], None]


class RunCheckpoints:
    """The step checkpoints of a folder: writes ``step-N`` (atomically; the newest
    ``keep_last`` kept, plus the one a rollback may still need) and finds the newest valid
    one to resume or roll back to.

    ``problem(tensors, state)`` (e.g. :meth:`Loop.checkpoint_problem`) says why a
    checkpoint's JSON is structurally not one of the loop's; such a checkpoint is skipped
    like one whose hashes do not match, with a warning naming it.
    """

    def __init__(
        self,
        folder: Path,
        keep_last: int,
        problem: Callable[[dict[str, torch.Tensor], dict[str, Any]], str | None] | None = None,
    ) -> None:
        self.folder, self.keep_last, self.problem = folder, keep_last, problem

    def save(
        self,
        tensors: dict[str, torch.Tensor],
        meta: dict[str, Any],
        step: int,
        keep_before: int | None = None,
    ) -> Path:
        """Write the checkpoint of ``step``; pruning spares the newest one older than
        ``keep_before`` (a step whose parameters passed every check)."""
        path = ckpt.save_checkpoint(ckpt.step_dir(self.folder, step), tensors, meta)
        keep = None
        if keep_before is not None:
            older = [f for f in ckpt.list_checkpoints(self.folder) if ckpt.step_of(f) < keep_before]
            keep = older[-1] if older else None
        ckpt.prune(self.folder, self.keep_last, keep=keep)
        return path

    def _accept(
        self, finite: bool, restore: Restore | None
    ) -> Callable[[Path, dict[str, torch.Tensor], dict[str, Any]], str | None]:
        def accept(folder: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> str | None:
            problem = None if self.problem is None else self.problem(tensors, state)
            if problem is None and finite and not ckpt.parameters_finite(tensors):
                problem = "its parameters hold NaN or inf"
            if problem is None and restore is not None:
                try:
                    restore(tensors, state)
                except ckpt.CheckpointMismatch as exc:
                    raise ckpt.CheckpointMismatch(f"{folder}: {exc}") from None
                except ckpt.CheckpointError as exc:
                    problem = str(exc)
            return problem

        return accept

    def latest(
        self, warn: bool = True, restore: Restore | None = None
    ) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest checkpoint that loads, passes the structural check and (with
        ``restore``) restores; the ones skipped are named in warnings."""
        return ckpt.latest_valid(self.folder, self._accept(False, restore), warn=warn)

    def latest_good(
        self, before: int, warn: bool = True, restore: Restore | None = None
    ) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
        """The newest valid checkpoint of a step before ``before`` whose parameters are finite
        (and that restores, with ``restore``): one a rollback can return to."""
        return ckpt.latest_valid(self.folder, self._accept(True, restore), warn=warn, before=before)

    def discard_after(self, step: int) -> list[Path]:
        """Delete the step checkpoints newer than ``step`` (those of an abandoned trajectory)."""
        gone = [f for f in ckpt.list_checkpoints(self.folder) if ckpt.step_of(f) > step]
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        return gone

    def clean(self) -> list[str]:
        """Remove the temporaries of killed checkpoint writes (see :func:`ckpt.clean_temporaries`)."""
        return ckpt.clean_temporaries(self.folder)


class DivergenceGuard(Callback):
    """Divergence checks beyond non-finite values, and recovery by rollback.

    A step diverges when an ``energy_*`` metric exceeds ``max_abs_energy`` in magnitude, or
    when the samples' mean energy exceeds the data's by more than ``max_energy_gap`` for
    ``patience`` consecutive steps. A divergence (these or the loop's non-finite checks)
    restores the newest *good* checkpoint through ``restore`` with every learning rate
    multiplied by ``lr_factor``, at most ``max_rollbacks`` times; then, or when
    ``enabled`` is false, training stops with :class:`TrainingDiverged`.

    The metrics of step ``t`` are computed with the parameters that the checkpoint of step
    ``t`` holds, so that checkpoint (written after the update that broke them) is not good.
    A checkpoint of step ``s`` is good when ``s`` is before the failed step, before the
    first step of a run of energy-gap strikes that ended in the divergence, and its
    parameters are finite. The checkpoints after the one restored belong to the abandoned
    trajectory and are deleted, so that a later resume cannot pick them up.
    """

    def __init__(
        self,
        section: DivergenceSection,
        checkpoints: RunCheckpoints | None,
        restore: Callable[[dict[str, torch.Tensor], dict[str, Any]], None],
        log: Callable[[dict[str, Any]], None] = lambda record: None,
        main: bool = True,
        echo: bool = True,
    ) -> None:
        self.cfg, self.checkpoints, self.restore, self.log = section, checkpoints, restore, log
        self.main = main  # the process that reports (warnings) and deletes abandoned checkpoints
        self.echo = echo  # print each rollback (besides logging it)
        self.rollbacks = 0
        self.gap_strikes = 0
        self._gap_failed = False
        self.on_stop: Callable[[], None] = lambda: None

    def good_before(self, step: int) -> int:
        """Checkpoints of steps before this one passed every check made so far."""
        return step - self.gap_strikes

    def check(self, loop: Loop, metrics: dict[str, float]) -> None:
        div = self.cfg
        energies = {k: v for k, v in metrics.items() if k.startswith("energy_")}
        for k, v in energies.items():
            if abs(v) > div.max_abs_energy:
                raise DivergenceError(f"runaway energy: |{k}| = {abs(v):.3g} > {div.max_abs_energy:.3g}")
        if div.max_energy_gap is not None and {"energy_data", "energy_samples"} <= set(energies):
            gap = energies["energy_samples"] - energies["energy_data"]
            self.gap_strikes = self.gap_strikes + 1 if gap > div.max_energy_gap else 0
            if self.gap_strikes >= div.patience:
                self._gap_failed = True
                raise DivergenceError(
                    f"runaway energies: samples {gap:.3g} above data for {self.gap_strikes} steps "
                    f"(bound {div.max_energy_gap:.3g})"
                )

    def on_divergence(self, loop: Loop, reason: str) -> bool:
        div = self.cfg
        failed_step, rollbacks, lr_scale = loop.step, self.rollbacks + 1, loop.lr_scale * div.lr_factor
        # a gap divergence at t counted strikes at t - strikes + 1 .. t; another failure is at t
        before = failed_step - self.gap_strikes + 1 if self._gap_failed else failed_step
        if not div.enabled or rollbacks > div.max_rollbacks:
            self.log({"phase": "event", "step": failed_step, "event": "diverged", "message": reason})
            self.on_stop()
            raise TrainingDiverged(
                f"training diverged at step {failed_step}: {reason} "
                f"(after {self.rollbacks} rollback(s); divergence.max_rollbacks = {div.max_rollbacks})"
            )
        found = None
        if self.checkpoints is not None:
            found = self.checkpoints.latest_good(before, warn=self.main, restore=self.restore)
        if found is None:
            self.log({"phase": "event", "step": failed_step, "event": "diverged", "message": reason})
            self.on_stop()
            raise TrainingDiverged(
                f"training diverged at step {failed_step} ({reason}) and no good checkpoint is left "
                f"(none of a step before {before} with finite parameters)"
            )
        folder = found[0]
        if self.main and self.checkpoints is not None:
            self.checkpoints.discard_after(loop.step)
        self.rollbacks, self.gap_strikes, self._gap_failed = rollbacks, 0, False
        loop.lr_scale = lr_scale
        loop.apply_lr()
        message = (
            f"{reason}; rolled back to step {loop.step} ({folder.name}); learning rates x{lr_scale:g} "
            f"(rollback {rollbacks} of at most {div.max_rollbacks})"
        )
        self.log({"phase": "event", "step": failed_step, "event": "rollback", "message": message})
        if self.main and self.echo:
            print(f"nrf: {message}")
        return True


@dataclass
class FitCheckpoints(Callback):
    """Checkpoints of one in-memory fit (an estimator's): the loop's whole state, the epoch
    history and the fit's fingerprint (what must match to continue: settings, seed, networks,
    a hash of the rows). On start, a folder holding a checkpoint of the same fit continues
    from its newest valid one; one of another fit is refused, naming the first entry of
    ``fingerprint`` that differs (``names`` turns entries into the estimator's words)."""

    store: RunCheckpoints
    every: int
    loop: Loop
    history: EpochHistory
    fingerprint: dict[str, Any]
    names: dict[str, str] = field(default_factory=dict)
    resumed_from: str | None = field(default=None)
    _lock: FolderLock | None = field(default=None, repr=False)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = self.loop.checkpoint()
        meta["history"] = self.history.state()
        meta["fit"] = self.fingerprint
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore the loop and the history from a checkpoint of this fit (a checkpoint of
        another fit raises :class:`~nrf.training.checkpoint.CheckpointMismatch`)."""
        theirs, ours = meta.get("fit") or {}, json.loads(json.dumps(self.fingerprint))
        if not isinstance(theirs, dict):
            raise ckpt.CheckpointError(ckpt.bad_field("fit", "the fit's fingerprint", theirs))
        differ = [k for k in ours if theirs.get(k) != ours[k]]
        if differ:
            what = self.names.get(differ[0], differ[0])
            raise ckpt.CheckpointMismatch(
                f"checkpoint_dir {self.store.folder} holds checkpoints of another fit (its {what} differ "
                f"from this fit's); give an empty folder or the one of this fit"
            )
        if not isinstance(meta.get("history"), dict):
            raise ckpt.CheckpointError("state.json history: expected the epoch history's state")
        self.loop.restore_checkpoint(tensors, meta)
        try:
            self.history.restore(meta["history"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ckpt.CheckpointError(f"state.json history: does not restore ({exc})") from None

    def save(self) -> None:
        tensors, meta = self.state()
        self.store.save(tensors, meta, self.loop.step)

    def on_start(self, loop: Loop) -> None:
        self._lock = FolderLock(self.store.folder, "checkpoint_dir").acquire()
        self.store.clean()
        found = self.store.latest(restore=self.restore)
        if found is None:
            self.save()
            return
        self.resumed_from = found[0].name

    def on_step(self, loop: Loop, metrics: dict[str, float]) -> None:
        if loop.step % self.every == 0 and loop.step < loop.steps:
            self.save()

    def on_end(self, loop: Loop) -> None:
        self.save()

    def on_exit(self, loop: Loop) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def fit_recovery(
    folder: Path,
    every: int,
    max_rollbacks: int,
    loop: Loop,
    history: EpochHistory,
    fingerprint: dict[str, Any],
    names: dict[str, str] | None = None,
    warn_as: str = "fit",
) -> list[Callback]:
    """The callbacks of a fit with checkpoints in ``folder`` every ``every`` iterations: the
    checkpoints, and a divergence guard that rolls back to them on the loop's own
    divergences (non-finite values; no energy bound) with a ``UserWarning`` each time."""
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint_dir must be a folder, got the file {folder}")
    store = RunCheckpoints(folder, keep_last=3, problem=loop.checkpoint_problem)
    checkpoints = FitCheckpoints(store, every, loop, history, fingerprint, names or {})

    def warn(record: dict[str, Any]) -> None:
        if record.get("event") == "rollback":
            warnings.warn(f"{warn_as}: {record['message']}", UserWarning, stacklevel=2)

    section = DivergenceSection(max_rollbacks=max_rollbacks, max_abs_energy=math.inf)
    guard = DivergenceGuard(section, checkpoints.store, checkpoints.restore, warn, echo=False)
    return [checkpoints, guard]
