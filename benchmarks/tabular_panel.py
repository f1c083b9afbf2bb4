"""The detector on a panel of real data sets nobody tuned it on: nrf vs PyOD, train on normal rows.

The semi-supervised protocol of ADBench (Han et al. 2022): per data set and seed, at most
10,000 rows are drawn (ADBench's cap), split 70 / 30 stratified by label; every method
trains on the **normal** rows of the 70 % part only and scores the whole 30 % part. All
methods get the same rows, min-max scaled with the training rows' statistics (ADBench's
preprocessing); the detector then applies its own default scaling on top, as it would for
any user. Classification sets become one-class tasks (one class normal); sets with several
tasks (iris, digits, MNIST) score the mean over their tasks. Metrics: AUROC and average
precision (anomaly positive) per set, the mean over sets, the mean rank (1 = best) and
wins / ties / losses of ``nrf default`` against each baseline (a tie: mean AUROC within
0.5 points).

Data (see :mod:`nrf.data.anomaly_sets`): scikit-learn's bundled sets, MNIST and
KDDCUP99 from ``$NRF_DATA_DIR``, and ADBench's Classical ``.npz`` files, looked up as
``<data root>/adbench/<file>.npz`` and checked against recorded sha256 values (get them
with ``git clone https://github.com/Minqi824/ADBench`` and copy ``adbench/datasets/Classical/*.npz``).

Baselines: PyOD 3.6.7 with its defaults (AutoEncoder 10 epochs and DeepSVDD 100, batch 32)
and DIF (deep isolation forest, Xu et al. 2023; the most recent
method of PyOD that installs here). Results go to ``OUT/tabular-panel-progress.jsonl``
(``--resume``); a record is reused only while its method's settings are unchanged.
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from _anomaly import (
    NRF_ROWS,
    Progress,
    add_report_argument,
    detector_settings,
    fit_and_score,
    flagged_cell,
    health_record,
    method_factory,
    open_progress,
    select_methods,
)
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from nrf.bench import BenchResult, markdown_table, mean_sd
from nrf.data.anomaly_sets import (
    AnomalyTask,
    load_adbench,
    load_kdd_service,
    load_mnist_tasks,
    load_sklearn_tasks,
)

NAME = "tabular-panel"
DESCRIPTION = "The default detector on 26 real data sets (ADBench, scikit-learn, MNIST, KDDCUP99) vs PyOD"
MAX_ROWS = 10_000  # ADBench's subsampling cap per data set
TIE = 0.5  # AUROC points within which two methods tie
PANEL_BASELINES = ("KNN", "LOF", "KDE", "IForest", "ECOD", "OCSVM", "DeepSVDD", "AutoEncoder", "DIF")


class PanelSet(NamedTuple):
    name: str
    kind: str  # continuous, binary, mixed, image, discrete
    source: str
    load: Callable[[], list[AnomalyTask]]


def _adbench(stem: str) -> Callable[[], list[AnomalyTask]]:
    return lambda: [load_adbench(stem)]


PANEL: tuple[PanelSet, ...] = (
    PanelSet("iris", "continuous", "scikit-learn (each class normal)", lambda: load_sklearn_tasks("iris")),
    PanelSet("vertebral", "continuous", "ADBench 39_vertebral", _adbench("39_vertebral")),
    PanelSet("ionosphere", "continuous", "ADBench 18_Ionosphere", _adbench("18_Ionosphere")),
    PanelSet("breast-cancer", "continuous", "scikit-learn (benign normal)",
             lambda: load_sklearn_tasks("breast-cancer")),
    PanelSet("pima", "continuous", "ADBench 29_Pima", _adbench("29_Pima")),
    PanelSet("vowels", "continuous", "ADBench 40_vowels", _adbench("40_vowels")),
    PanelSet("letter", "discrete", "ADBench 20_letter", _adbench("20_letter")),
    PanelSet("digits", "image", "scikit-learn 8 x 8 (each digit normal)",
             lambda: load_sklearn_tasks("digits")),
    PanelSet("cardio", "continuous", "ADBench 6_cardio", _adbench("6_cardio")),
    PanelSet("musk", "continuous", "ADBench 25_musk", _adbench("25_musk")),
    PanelSet("thyroid", "continuous", "ADBench 38_thyroid", _adbench("38_thyroid")),
    PanelSet("spambase", "mixed", "ADBench 35_SpamBase", _adbench("35_SpamBase")),
    PanelSet("optdigits", "image", "ADBench 26_optdigits", _adbench("26_optdigits")),
    PanelSet("satellite", "discrete", "ADBench 30_satellite", _adbench("30_satellite")),
    PanelSet("pendigits", "continuous", "ADBench 28_pendigits", _adbench("28_pendigits")),
    PanelSet("annthyroid", "mixed", "ADBench 2_annthyroid", _adbench("2_annthyroid")),
    PanelSet("kdd-smtp", "mixed", "KDDCUP99 10 %, service smtp", lambda: [load_kdd_service("smtp")]),
    PanelSet("mammography", "continuous", "ADBench 23_mammography", _adbench("23_mammography")),
    PanelSet("magic-gamma", "continuous", "ADBench 22_magic.gamma", _adbench("22_magic.gamma")),
    PanelSet("campaign", "mixed", "ADBench 5_campaign", _adbench("5_campaign")),
    PanelSet("shuttle", "discrete", "ADBench 32_shuttle", _adbench("32_shuttle")),
    PanelSet("aloi", "continuous", "ADBench 1_ALOI", _adbench("1_ALOI")),
    PanelSet("kdd-http", "mixed", "KDDCUP99 10 %, service http", lambda: [load_kdd_service("http")]),
    PanelSet("mnist", "image", "MNIST 70,000 (each digit normal)", load_mnist_tasks),
    PanelSet("celeba", "binary", "ADBench 8_celeba", _adbench("8_celeba")),
    PanelSet("cover", "discrete", "ADBench 10_cover", _adbench("10_cover")),
)  # fmt: skip
SETS = {s.name: s for s in PANEL}
QUICK_SETS = ("iris", "breast-cancer")
DEFAULT_METHODS = "default," + ",".join(b.lower() for b in PANEL_BASELINES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sets", default=None, help=f"comma-separated data sets (default all: {','.join(SETS)})"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per data set (default 3)")
    parser.add_argument(
        "--methods", default=DEFAULT_METHODS,
        help="comma-separated nrf keys (default, dsm, ...) and PyOD names (default: nrf default and "
        "the nine baselines)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=None, help="nrf epochs (default: the detector's)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/tabular-panel-progress.jsonl"
    )
    add_report_argument(parser)


def split_task(task: AnomalyTask, seed: int, max_rows: int = MAX_ROWS) -> tuple[np.ndarray, ...]:
    """ADBench's split: at most ``max_rows`` rows at random, 70 / 30 stratified; the normal
    rows of the 70 % part, min-max scaled by their own statistics, and the 30 % part scaled
    the same way, with its labels. Returns ``(train, test, y_test)``."""
    rs = np.random.RandomState(seed)
    X, y = task.X, task.y
    if X.shape[0] > max_rows:
        keep = np.sort(rs.choice(X.shape[0], max_rows, replace=False))
        X, y = X[keep], y[keep]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=rs)
    train = X_train[y_train == 0]
    low, span = train.min(axis=0), np.ptp(train, axis=0)
    span = np.where(span > 0, span, 1.0)
    return ((train - low) / span).astype(np.float32), ((X_test - low) / span).astype(np.float32), y_test


def _maker(method: str, n_features: int, seed: int, epochs: int | None, device: str) -> Callable[[], Any]:
    return method_factory(method, n_features, seed, network="tabular", nrf_epochs=epochs,
                          batch_size=32, deep_epochs=100, device=device)  # fmt: skip


def _key(task: str, seed_index: int) -> int:
    return zlib.crc32(f"{task}#{seed_index}".encode())


def run(args: argparse.Namespace) -> BenchResult:
    names = list(QUICK_SETS if args.quick and args.sets is None else (args.sets or ",".join(SETS)).split(","))
    unknown = [n for n in names if n not in SETS]
    if unknown:
        raise ValueError(f"--sets: unknown {unknown}; choose from {list(SETS)}")
    seeds = 1 if args.quick else args.seeds
    methods = select_methods(args.methods, extra=PANEL_BASELINES)
    if args.quick and args.methods == DEFAULT_METHODS:
        methods = ["nrf default", "IForest", "KNN", "ECOD"]
    epochs = args.epochs or (2 if args.quick else None)
    config = {"epochs": epochs, "seed": args.seed, "quick": args.quick, "max_rows": MAX_ROWS}
    progress = open_progress(Path(args.out) / "tabular-panel-progress.jsonl", args, config)
    settings = {m: detector_settings(_maker(m, 4, args.seed, epochs, args.device)()) for m in methods}
    for name in [] if args.report else names:
        tasks = SETS[name].load()
        for t_index, task in enumerate(tasks):
            for seed_index in range(seeds):
                seed = args.seed + seed_index
                train, test, y = split_task(task, seed + 7919 * t_index)
                key = _key(task.name, seed_index)
                for method in methods:
                    if progress.has(method, key, settings[method]):
                        continue
                    det, scores, fit_s, score_s = fit_and_score(
                        _maker(method, train.shape[1], seed, epochs, args.device), train, test
                    )
                    auroc = 100.0 * float(roc_auc_score(y, scores))
                    ap = 100.0 * float(average_precision_score(y, scores))
                    progress.add({"method": method, "split": key, "set": name, "task": task.name,
                                  "seed": seed, "auroc": auroc, "ap": ap, "fit_s": fit_s,
                                  "score_s": score_s, "n_train": int(train.shape[0]),
                                  "n_test": int(test.shape[0]), "d": int(train.shape[1]),
                                  **health_record(det), "settings": settings[method]})  # fmt: skip
                    print(f"{task.name:<16} seed {seed} {method:<12} AUROC {auroc:6.2f}  AP {ap:6.2f}  "
                          f"fit {fit_s:5.1f} s", flush=True)  # fmt: skip
    return panel_table(methods, progress, settings, names)


def set_scores(records: list[dict[str, Any]], metric: str) -> dict[str, list[float]]:
    """Per data set, one value per seed: the mean of ``metric`` over the set's tasks."""
    by: dict[str, dict[int, list[float]]] = {}
    for r in records:
        by.setdefault(r["set"], {}).setdefault(r["seed"], []).append(r[metric])
    return {s: [float(np.mean(v)) for _, v in sorted(seeds.items())] for s, seeds in by.items()}


def panel_table(
    methods: list[str], progress: Progress, settings: dict[str, dict[str, Any]], names: list[str]
) -> BenchResult:
    auroc = {m: set_scores(progress.records(m, settings[m]), "auroc") for m in methods}
    ap = {m: set_scores(progress.records(m, settings[m]), "ap") for m in methods}
    methods = [m for m in methods if auroc[m]]
    complete = [n for n in names if all(n in auroc[m] for m in methods)]
    mean_of = {m: {n: float(np.mean(auroc[m][n])) for n in complete} for m in methods}
    ranks = {m: [] for m in methods}  # type: dict[str, list[float]]
    for n in complete:
        order = sorted(methods, key=lambda m: -mean_of[m][n])
        values = [mean_of[m][n] for m in order]
        for m in methods:  # average rank over ties of equal value
            positions = [i + 1 for i, v in enumerate(values) if v == mean_of[m][n]]
            ranks[m].append(float(np.mean(positions)))
    rows = []
    for n in complete:
        best = max(mean_of[m][n] for m in methods)
        cells = []
        for m in methods:
            mu, sd = mean_sd(auroc[m][n])
            mark = "**" if mean_of[m][n] == best else ""
            cells.append(f"{mark}{mu:.1f}{mark}" + (f" ± {sd:.1f}" if len(auroc[m][n]) > 1 else ""))
        set_info = SETS[n]
        rows.append([n, set_info.kind, *cells])
    rows.append(["mean AUROC", "", *(f"{np.mean(list(mean_of[m].values())):.2f}" for m in methods)])
    rows.append(["mean AP", "", *(f"{np.mean([np.mean(ap[m][n]) for n in complete]):.2f}" for m in methods)])
    rows.append(["mean rank", "", *(f"{np.mean(ranks[m]):.2f}" for m in methods)])
    rows.append(["flagged fits", "", *(flagged_cell(progress.records(m, settings[m])) for m in methods)])
    fit = {m: mean_sd([r["fit_s"] for r in progress.records(m, settings[m])])[0] for m in methods}
    rows.append(["fit s (mean)", "", *(f"{fit[m]:.1f}" for m in methods)])
    headers = ["data set", "kind", *methods]
    table = markdown_table(headers, rows)
    nrf = next((m for m in methods if m in NRF_ROWS), None)
    wtl: dict[str, list[int]] = {}
    worst: dict[str, float] = {}
    if nrf is not None:
        for m in methods:
            if m == nrf:
                continue
            diffs = [mean_of[nrf][n] - mean_of[m][n] for n in complete]
            wtl[m] = [
                sum(d > TIE for d in diffs),
                sum(abs(d) <= TIE for d in diffs),
                sum(d < -TIE for d in diffs),
            ]
        for n in complete:
            worst[n] = mean_of[nrf][n] - max(mean_of[m][n] for m in methods if m != nrf)
        wtl_rows = [[m, *map(str, w)] for m, w in wtl.items()]
        table += "\n\n" + markdown_table([f"{nrf} vs", "wins", "ties", "losses"], wtl_rows)
    ap_rows = [[n, *(f"{np.mean(ap[m][n]):.1f}" for m in methods)] for n in complete]
    table += "\n\nAverage precision (%):\n\n" + markdown_table(["data set", *methods], ap_rows)
    notes = [
        "AUROC % (anomaly positive), mean ± sd over seeds; bold: best on the set",
        f"ties: within {TIE} AUROC points; sets with several tasks: mean over their tasks per seed",
    ]
    if worst:
        lowest = min(worst, key=lambda n: worst[n])
        notes.append(f"{nrf}: largest gap below the best baseline {worst[lowest]:.1f} points ({lowest})")
    mean_rank = {m: float(np.mean(ranks[m])) for m in methods}
    results = {"sets": complete, "auroc": auroc, "ap": ap, "mean_rank": mean_rank,
               "wins_ties_losses": wtl, "gap_to_best_baseline": worst,
               "records": {m: progress.records(m, settings[m]) for m in methods},
               "settings": settings}  # fmt: skip
    return BenchResult(table, results, [], notes)
