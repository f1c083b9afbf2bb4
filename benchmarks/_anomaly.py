"""Shared pieces of the anomaly-detection benchmarks (``kdd``, ``mnist-oc``).

Every method is fitted on the same training rows and scores the same test rows; scores are
"higher = more anomalous" (PyOD's convention, and the energy for nrf). Results are
appended to ``<out>/<name>-progress.jsonl`` as soon as each (method, split) finishes, so a
long run that is interrupted continues with ``--resume`` instead of starting over. Each
record carries the detector's settings (:func:`detector_settings`); on ``--resume`` a
record counts only while they are unchanged, so a changed default (e.g. of an nrf preset)
reruns that method and keeps the others.

PyOD baselines (``pip install -e .[bench]``): settings are PyOD's defaults except where
stated in :data:`BASELINE_NOTES` (epochs and batch sizes of the deep models, chosen so that
one fit takes minutes on 2 cores; training rows of the kernel methods subsampled).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BASELINES = ("IForest", "HBOS", "ECOD", "OCSVM", "KDE", "KNN", "LOF", "AutoEncoder", "VAE", "DeepSVDD")
BASELINE_NOTES = {
    "IForest": "100 trees",
    "HBOS": "10 bins",
    "ECOD": "",
    "OCSVM": "RBF, nu 0.5, gamma 1/d",
    "KDE": "Gaussian, bandwidth 1",
    "KNN": "5 neighbours, largest distance",
    "LOF": "20 neighbours",
    "AutoEncoder": "64-32 ReLU",
    "VAE": "128-64-32 ReLU, latent 2",
    "DeepSVDD": "64-32 ReLU",
    "DIF": "50 representations x 6 trees",
}
DEEP_EPOCHS = {"AutoEncoder": "epoch_num", "VAE": "epoch_num", "DeepSVDD": "epochs"}  # PyOD's name
# baselines without randomness: another seed on the same rows gives the same scores, so the
# benchmarks that repeat seeds fit them once per split
DETERMINISTIC = frozenset({"HBOS", "ECOD", "OCSVM", "KDE", "KNN", "LOF"})


ENSEMBLE = 3  # models of the "x3" rows (NRFDetector n_estimators)
# --methods key -> (table row, NRFDetector arguments, preset family): "paper" rows use the
# paper's preset of the benchmark ("tabular" / "mnist"), "stable" rows its stable preset,
# "default" rows no preset at all (NRFDetector() as a user would make it)
NRF_METHODS: dict[str, tuple[str, dict[str, Any], str]] = {
    "sgld": ("nrf SGLD", {"sampler": "sgld"}, "paper"),
    "sghmc": ("nrf SGHMC", {"sampler": "sghmc"}, "paper"),
    "sgld-x3": (f"nrf SGLD x{ENSEMBLE}", {"sampler": "sgld", "n_estimators": ENSEMBLE}, "paper"),
    "sghmc-x3": (f"nrf SGHMC x{ENSEMBLE}", {"sampler": "sghmc", "n_estimators": ENSEMBLE}, "paper"),
    "sgld-pcd": ("nrf SGLD PCD", {"sampler": "sgld", "objective_options": {"persistent": 10000}}, "paper"),
    "dsm": ("nrf DSM", {"method": "dsm"}, "stable"),
    "dsm-x3": (f"nrf DSM x{ENSEMBLE}", {"method": "dsm", "n_estimators": ENSEMBLE}, "stable"),
    "ssm": ("nrf SSM", {"method": "ssm"}, "stable"),
    "nce": ("nrf NCE", {"method": "nce"}, "stable"),
    "default": ("nrf default", {}, "default"),
    # the default before the noise rule: one fixed level on min-max features (chosen on KDDCUP99)
    "dsm-fixed": ("nrf DSM 0.03", {"objective_options": {"sigmas": [0.03]}}, "default"),
    # the rule's level doubled, the rows as min-max scaled (the network's input not rescaled)
    "dsm-2x": ("nrf DSM 2h", {"objective_options": {"noise_ladder": [2.0], "noise_unit": None}}, "default"),
}
NRF_ROWS = {row: (key, kwargs, family) for key, (row, kwargs, family) in NRF_METHODS.items()}


def paper_key(method: str) -> str:
    """The paper's row for ``method``: an ensemble or persistent row compares with its sampler's row."""
    return method.removesuffix(f" x{ENSEMBLE}").removesuffix(" PCD")


def settings_note(method: str, settings: dict[str, Any], nrf_note: str = "") -> str:
    """The table's settings column: PyOD's notes (with the deep models' epochs and batch),
    or the nrf run's method, epochs, ``nrf_note`` (paper rows) and the number of models."""
    if method in DEEP_EPOCHS:
        epochs = settings[DEEP_EPOCHS[method]]
        return f"{BASELINE_NOTES[method]}, {epochs} epochs, batch {settings['batch_size']}"
    if method in BASELINE_NOTES:
        return BASELINE_NOTES[method]
    preset = settings["preset"]
    family = NRF_ROWS[method][2] if method in NRF_ROWS else "paper"
    chosen = "best held-out loss" if preset.get("selection") == "best" else "final model"
    parts = [f"{preset['network']}: {preset['method']}, {chosen}, {preset['epochs']} epochs"]
    if family == "paper" and nrf_note:
        parts.append(nrf_note)
    if family != "paper":
        parts.append(f"{preset['scaling']} scaling, {preset['objective']}")
    if settings.get("n_estimators", 1) > 1:
        parts.append(f"{settings['n_estimators']} models (mean standardized energy)")
    return ", ".join(parts)


def select_methods(spec: str, ensembles: bool = False, extra: tuple[str, ...] = ()) -> list[str]:
    """``--methods``: ``all`` or a comma-separated subset of the keys of :data:`NRF_METHODS`
    and the PyOD names (:data:`BASELINES` and ``extra``); ``all`` includes the x3 ensembles
    only with ``ensembles``."""
    baselines = [*BASELINES, *(b for b in extra if b not in BASELINES)]
    if spec == "all":
        nrf = [row for key, (row, _, _) in NRF_METHODS.items() if ensembles or not key.endswith("-x3")]
        return [*nrf, *baselines]
    keys = {**{k: row for k, (row, _, _) in NRF_METHODS.items()}, **{b.lower(): b for b in baselines}}
    wanted = [s.strip().lower() for s in spec.split(",")]
    unknown = [w for w in wanted if w not in keys]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {sorted(keys)}")
    return [keys[w] for w in wanted]


def make_baseline(
    name: str, n_features: int, seed: int, *, batch_size: int, epochs: int, device: str = "cpu"
) -> Any:
    """A PyOD detector by name (imported here: PyOD is a benchmark extra). ``device`` goes
    to the AutoEncoder and the VAE; PyOD's DeepSVDD has no device argument and picks CUDA
    when it can."""
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.deep_svdd import DeepSVDD
        from pyod.models.dif import DIF
        from pyod.models.ecod import ECOD
        from pyod.models.hbos import HBOS
        from pyod.models.iforest import IForest
        from pyod.models.kde import KDE
        from pyod.models.knn import KNN
        from pyod.models.lof import LOF
        from pyod.models.ocsvm import OCSVM
        from pyod.models.vae import VAE
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the PyOD baselines need the bench extra: pip install -e '.[bench]'") from exc
    makers: dict[str, Callable[[], Any]] = {
        "IForest": lambda: IForest(random_state=seed),
        "HBOS": lambda: HBOS(),
        "ECOD": lambda: ECOD(),
        "OCSVM": lambda: OCSVM(),
        "KDE": lambda: KDE(),
        "KNN": lambda: KNN(),
        "LOF": lambda: LOF(),
        "AutoEncoder": lambda: AutoEncoder(
            epoch_num=10, batch_size=batch_size, verbose=0, random_state=seed, device=device
        ),
        "VAE": lambda: VAE(epoch_num=10, batch_size=batch_size, verbose=0, random_state=seed, device=device),
        "DeepSVDD": lambda: DeepSVDD(
            n_features=n_features, epochs=epochs, batch_size=batch_size, verbose=0, random_state=seed
        ),
        "DIF": lambda: DIF(random_state=seed, device=device),
    }
    return makers[name]()


def method_factory(
    method: str,
    n_features: int,
    seed: int,
    *,
    network: str,
    nrf_epochs: int | None,
    batch_size: int,
    deep_epochs: int,
    contamination: float = 0.1,
    device: str = "cpu",
) -> Callable[[], Any]:
    """A zero-argument maker of a fresh detector for ``method`` (a row of
    :data:`NRF_METHODS` or a PyOD name), all with the same ``contamination``; nrf and the
    deep PyOD models run on ``device``. ``network`` is the benchmark's paper preset; its
    stable preset is ``network + "-stable"``."""
    if method in NRF_ROWS:
        from nrf.applications import NRFDetector

        _, kwargs, family = NRF_ROWS[method]
        preset = {"paper": {"network": network}, "stable": {"network": f"{network}-stable"}, "default": {}}
        epochs = {} if nrf_epochs is None else {"epochs": nrf_epochs}
        return lambda: NRFDetector(contamination, **preset[family], **kwargs, **epochs,
                                   device=device, random_state=seed)  # fmt: skip

    def make() -> Any:
        det = make_baseline(
            method, n_features, seed, batch_size=batch_size, epochs=deep_epochs, device=device
        )
        det.set_params(contamination=contamination)
        return det

    return make


def fit_and_score(
    make: Callable[[], Any], train: np.ndarray, test: np.ndarray
) -> tuple[Any, np.ndarray, float, float]:
    """Fit a fresh detector on ``train``, score ``test``: (detector, scores, fit s, score s)."""
    det = make()
    start = time.perf_counter()
    det.fit(train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.asarray(det.decision_function(test), dtype=np.float64)
    score_s = time.perf_counter() - start
    if not np.isfinite(scores).all():
        raise FloatingPointError(f"{type(det).__name__} gave non-finite scores")
    return det, scores, fit_s, score_s


def health_record(detector: Any) -> dict[str, Any]:
    """The health flags of an nrf detector's fit and its last stability figures, for the
    progress record (empty for a baseline)."""
    if not hasattr(detector, "health_flags_"):
        return {}
    last = next((e for e in reversed(detector.history_) if "tail_stability" in e), {})
    return {"health_flags": list(detector.health_flags_),
            **{k: float(last[k]) for k in ("rank_stability", "tail_stability") if k in last}}  # fmt: skip


def flagged_cell(records: list[dict[str, Any]]) -> str:
    """``"k / n"``: fits of ``records`` that ended flagged by their diagnostics ("-": not recorded)."""
    known = [r for r in records if "health_flags" in r]
    return f"{sum(bool(r['health_flags']) for r in known)} / {len(known)}" if known else "-"


def detector_settings(detector: Any) -> dict[str, Any]:
    """A detector's parameters as JSON values, with the resolved settings for nrf detectors
    (``"preset"``: the component specs its ``None`` parameters resolve to), without
    ``random_state`` (the benchmarks derive it from ``--seed`` and the split)."""
    params = {k: v for k, v in detector.get_params().items() if k != "random_state"}
    if type(detector).__name__ == "NRFDetector":
        params["preset"] = detector._settings().to_config()
    loaded: dict[str, Any] = json.loads(json.dumps(params, default=repr, sort_keys=True))
    return loaded


def open_progress(path: Path, args: Any, config: dict[str, Any]) -> Progress:
    """The benchmark's progress file: ``--resume`` continues it, ``--report`` only reads it
    (and needs it to exist)."""
    if args.report and not path.is_file():
        raise FileNotFoundError(f"--report: no progress file {path} (run the benchmark first)")
    return Progress(path, args.resume or args.report, config)


def add_report_argument(parser: Any) -> None:
    text = "print the table of OUT's progress file and fit nothing (e.g. while a run goes on)"
    parser.add_argument("--report", action="store_true", help=text)


class Progress:
    """Append-only record of finished (method, split) results; reloaded with ``resume``.

    Records are dicts with at least ``method``, ``split`` and ``settings``; :meth:`has` and
    :meth:`records` only count those whose settings equal the current ones.
    """

    def __init__(self, path: Path, resume: bool, config: dict[str, Any]) -> None:
        self.path = path
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.is_file():
            lines = path.read_text().splitlines()
            head = json.loads(lines[0]) if lines else {}
            if head.get("config") != config:
                raise ValueError(f"--resume: {path} was written with other settings {head.get('config')}")
            for line in lines[1:]:
                rec = json.loads(line)
                self.done[(rec["method"], rec["split"])] = rec
        else:
            path.write_text(json.dumps({"config": config}) + "\n")

    def has(self, method: str, split: int, settings: dict[str, Any]) -> bool:
        rec = self.done.get((method, split))
        return rec is not None and rec.get("settings") == settings

    def add(self, record: dict[str, Any]) -> None:
        self.done[(record["method"], record["split"])] = record
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self, method: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
        done = sorted(self.done.items(), key=lambda kv: kv[0][1])
        return [r for (m, _), r in done if m == method and r.get("settings") == settings]


def subsample(rows: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` rows, drawn without replacement (all rows when ``limit`` is None)."""
    if limit is None or rows.shape[0] <= limit:
        return rows
    idx = np.random.RandomState(seed).choice(rows.shape[0], limit, replace=False)
    return rows[np.sort(idx)]
