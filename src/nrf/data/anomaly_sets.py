"""Real anomaly-detection data sets as one-class tasks: rows ``X`` and labels ``y`` (1 =
anomaly), for the detector panel (``nrf bench tabular-panel``).

Three sources, none downloaded by nrf:

* **ADBench's "Classical" files** (Han et al., NeurIPS 2022; the ``.npz`` files of the
  repository github.com/Minqi824/ADBench, folder ``adbench/datasets/Classical``, most of
  them ODDS sets): arrays ``X`` ``(n, d)`` and ``y`` ``(n,)`` (1 anomaly). They are looked
  up as ``<root>/adbench/<file>`` (roots: :mod:`nrf.data.paths`); each known file is
  checked against the size and sha256 of :data:`ADBENCH_FILES`, recorded from that
  repository's snapshot (commit 3dac822). Files are read with ``allow_pickle=False``.
* **scikit-learn's bundled sets** (no download): classification sets turned into one-class
  tasks, one class normal and the other classes anomalous (:data:`SKLEARN_SETS` says which).
* **The papers' files** nrf already reads: MNIST (one digit normal, the other nine
  anomalous; pixels / 255) and KDDCUP99 10 % split by service as ADBench's ``http`` /
  ``smtp`` are (the rows of one ``service``; ``"normal."`` traffic is normal, every attack
  anomalous; the numeric columns, raw).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nrf._checks import check_choice
from nrf.data._io import file_digest
from nrf.data.errors import ChecksumError, DataFormatError
from nrf.data.paths import find_file

ADBENCH_SUBDIR = "adbench"
ADBENCH_SOURCE = "github.com/Minqi824/ADBench adbench/datasets/Classical (snapshot 3dac822)"

# file stem -> (bytes, sha256) of the ADBench snapshot the panel was measured on
ADBENCH_FILES: dict[str, tuple[int, str]] = {
    "1_ALOI": (2904730, "792d0b5bd1147bfc9574a1974f157b39fbd4cbed8ecd04cf983fd554498ed477"),
    "2_annthyroid": (66547, "e738f7c58a8740d2c4aac4c71ff49ce5e1d1aa16f44178135fc9c09df05fad1b"),
    "4_breastw": (3023, "4f37ce07dbc25ddad8178fdc6d664ab46d2d0000ee28c2787c3c7ff3c03ef9f6"),
    "5_campaign": (728999, "74dd4d0072d6c6f1aabab63bc102f9633454f32bb936fa9bcfbd38f9f2386bcd"),
    "6_cardio": (68471, "bc5009bde6930b4d298b594f31b34485a9a17210cff0e8fb00a8c3068b885a2d"),
    "7_Cardiotocography": (37911, "5ae84910430f05923e11b6f537243263977c9136949dabd891e3570aeec51e29"),
    "8_celeba": (1700937, "1cadfdea14cd8d240eca715a70c09c88af8621d086a7478c63f602d97adef0b5"),
    "10_cover": (2537258, "945a097c3542ae81a551bf1c06dcad78a755d94f84fcaf1d60687e42d1a656df"),
    "11_donors": (2938691, "5824ec854465f2763b4bfe3da1ae9f25ed5433b5c6e265d42e37da4f82a58679"),
    "12_fault": (192040, "ec27301f9a4cf7c5d8b22c360cf37ddb043b7fb062465723dfd8b34e2771e5dd"),
    "14_glass": (10755, "aa7a8db1d475ba01a10488af454bc15220a3d5951b010b03b7020567d8152cdc"),
    "15_Hepatitis": (1644, "4a87a2f7d8013e5bfde63294fae61ec7a612322de72f338a7f9491749025ad98"),
    "16_http": (2179269, "9d98710091551587f4740cfc851a6b064fff6319a337c2dc77ee6da4bcc2e02c"),
    "17_InternetAds": (78157, "bdd8ad5cf5bf2cb96cba53dde30d522d0f6a279083a8e2bc7efbac5981b04385"),
    "18_Ionosphere": (42913, "bca46cb0cfd1bf9ddef6cde5ad2215d54fb0189508d0d4c4eb98e788cad69001"),
    "19_landsat": (223827, "ba17e2158c07469597b89db49d3982c874c6b713ff6670721ddc88969da77987"),
    "20_letter": (23946, "f986d3da80cf1fa2aea83a5ebe73b7d4800e0d4c01fdd1ae074b58d20f10d039"),
    "21_Lymphography": (1895, "dad977b04f4ea65b78ccd0e9f76b45175bad605165b37e63f3cc177845e67037"),
    "22_magic.gamma": (1296704, "0be375984d7af9ea7a63b12206c240840d8b7daa3607021c5fb8756407dd86f1"),
    "23_mammography": (166764, "a0308ac9712d78321073b1c2dc98dc37665c0f35c1cc33019416fe8f8d7de7ea"),
    "24_mnist": (455359, "be7706272325fdd3592c1be555ae1a82f916a2f8545f4f8cbaa548ab102cc44c"),
    "25_musk": (736255, "2ed3f4392197b76a1e59116ff880c7720a4b026cf4842073a53b56fdea265017"),
    "26_optdigits": (197633, "60de17a375a278ba220a7849727d998aa02b5e2f9fd17732a004bba28de4656e"),
    "27_PageBlocks": (102998, "10a9b4d5bb5d3b9083caab4c4062f665610eada703c3d927bf7c34b1f2d0d223"),
    "28_pendigits": (653509, "c4936b89dcdad59d303020e492f763a0f54170080d787c77497609acbb9c2d79"),
    "29_Pima": (11023, "215454bb263a2f040945c9ea7bd7f06f1e89a61a3143bdb6f196e3887e801a7d"),
    "30_satellite": (129874, "1f048f5686f1b8c16a227fdfa3c81a62cd9a92715714a6b24c69b1c5ad96b46e"),
    "31_satimage-2": (181405, "1b056e357f801b8b20c3f380a30224a3c4088d7ed764ec5a24828dc9b1918d6f"),
    "32_shuttle": (332929, "26900b0f6be45d9ddb7a402c9b2f956ceda42d23a8ca4cf4406b8bc1352823d1"),
    "33_skin": (618680, "d02aa01ffc1b6bf2b8b1ac250c90e8a8eacd0cefc962940ed5cc4bf5deac9c95"),
    "34_smtp": (496392, "d2569fc9bc12115419e3f5b37d19921e10e6c26e5ad1e61064cfb0fbc402dfdd"),
    "35_SpamBase": (152038, "d0c46c7928e43f6496bcd06e09de0b70f6bc8143792dfa0a43f450263d254e9b"),
    "37_Stamps": (20569, "99fe739447284f613fa54bf2dccdb51c5120175ce6260adec6dad77576c42509"),
    "38_thyroid": (39882, "8de161b3f235b7647bb0b39a836d983ff61d67bf234edac461da2d71e889cb87"),
    "39_vertebral": (4868, "0816286f92b96fe6867664a41a031ac7228dcfbf1a5feefe50ca3883b2e9073d"),
    "40_vowels": (134268, "4bfc4244d1c882773bbbc50d4a5db5e52276e53506e46b2d45e02d074cfcb1b6"),
    "41_Waveform": (145028, "6c9d867337ad1a2f8372c1d27f4c032f0401237e2041b7c45f00de8d319ff30f"),
    "42_WBC": (1444, "650f9dcb129248f67a291be0974f533ef259fcbde50fce5c8ad2a1cb2652d03b"),
    "43_WDBC": (46770, "78d4606a1ab516f5b60b00c196497f3bbd6bd5e4548fd04cf5f2475209b34b85"),
    "44_Wilt": (134531, "c70b72aa611ec87b20efb400943ef3ce4f8bf7aa58fcef825fbd28cc5cee3cc9"),
    "45_wine": (4072, "d5ad8965d92cc57122fe1e6572bb301adbaf795b3e166d187ae00a704d8f6e20"),
    "46_WPBC": (44367, "68a6d67242643855713bcdad07d89ecc472bd00000dccc17ba87916eb2693d19"),
    "47_yeast": (14707, "bbb15c873d78a4f6a589f46d0f75814595e2282d2ae7ce7779c750f276c3770d"),
}

# name -> (loader of sklearn.datasets, the normal class, its label's name)
SKLEARN_SETS: dict[str, tuple[str, str]] = {
    "iris": ("load_iris", "each class in turn normal (3 tasks), the other two anomalous"),
    "breast-cancer": ("load_breast_cancer", "benign normal, malignant anomalous"),
    "digits": ("load_digits", "each digit in turn normal (10 tasks), the other nine anomalous"),
}
KDD_SERVICES = ("http", "smtp")


@dataclass(frozen=True)
class AnomalyTask:
    """One one-class task: rows ``X`` (float64, ``(n, d)``) and ``y`` (int64, 1 = anomaly)."""

    name: str
    X: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError(
                f"{self.name}: X must be (n, d) and y (n,), got {self.X.shape} and {self.y.shape}"
            )
        if not np.isin(self.y, (0, 1)).all() or not 0 < int(self.y.sum()) < self.y.size:
            raise ValueError(f"{self.name}: y must be 0 (normal) / 1 (anomaly) with both present")


def read_xy_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``X`` ``(n, d)`` and ``y`` ``(n,)`` of an ADBench-style ``.npz`` file, as
    float64 and int64; a :class:`DataFormatError` naming the file for anything else (no
    pickled objects are read)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in ("X", "y") if k not in archive.files]
            if missing:
                raise DataFormatError(path, f"expected arrays 'X' and 'y', missing {missing}")
            X, y = archive["X"], archive["y"]
    except DataFormatError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataFormatError(path, f"not a readable .npz archive of numbers ({exc})") from None
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise DataFormatError(path, f"expected X (n, d) and y (n,), got {X.shape} and {y.shape}")
    if X.dtype.kind not in "iuf" or y.dtype.kind not in "iuf":
        raise DataFormatError(path, f"expected numeric arrays, got X {X.dtype} and y {y.dtype}")
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise DataFormatError(path, "X holds NaN or infinite values")
    if not np.isin(y, (0, 1)).all():
        raise DataFormatError(path, "y must hold only 0 (normal) and 1 (anomaly)")
    return X, y.astype(np.int64)


def load_adbench(
    name: str, root: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> AnomalyTask:
    """ADBench's Classical set ``name`` (the file stem, e.g. ``"6_cardio"``) from
    ``<root>/adbench/<name>.npz``; with ``verify`` a file of a known name must have the
    recorded size and sha256 (:class:`ChecksumError` otherwise)."""
    path = find_file(f"adbench:{name}", ADBENCH_SUBDIR, [f"{name}.npz"], root)
    if verify and name in ADBENCH_FILES:
        size, sha = ADBENCH_FILES[name]
        actual = path.stat().st_size
        if actual != size:
            raise DataFormatError(path, f"expected {size} bytes (the recorded ADBench file), got {actual}")
        digest = file_digest(path, "sha256")
        if digest != sha:
            raise ChecksumError(path, "sha256", sha, digest)
    X, y = read_xy_npz(path)
    return AnomalyTask(name, X, y)


def load_sklearn_tasks(name: str) -> list[AnomalyTask]:
    """One-class tasks of a scikit-learn bundled set (:data:`SKLEARN_SETS`)."""
    check_choice("name", name, tuple(SKLEARN_SETS))
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, SKLEARN_SETS[name][0])()
    X, target = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    if name == "breast-cancer":  # target 0 malignant, 1 benign
        return [AnomalyTask(name, X, (target == 0).astype(np.int64))]
    return [AnomalyTask(f"{name}/{c}", X, (target != c).astype(np.int64)) for c in np.unique(target)]


def load_mnist_tasks(root: str | os.PathLike[str] | None = None) -> list[AnomalyTask]:
    """MNIST (training and test images together, pixels / 255, 784 features): digit d
    normal and the other nine anomalous, for d = 0..9."""
    from nrf.data.mnist import load_mnist

    parts = [load_mnist(split, root=root) for split in ("train", "test")]
    X = np.concatenate([p.images.reshape(len(p.labels), -1) for p in parts]).astype(np.float64) / 255.0
    labels = np.concatenate([p.labels for p in parts])
    return [AnomalyTask(f"mnist/{d}", X, (labels != d).astype(np.int64)) for d in range(10)]


def load_kdd_service(service: str, root: str | os.PathLike[str] | None = None) -> AnomalyTask:
    """The KDDCUP99 10 % rows of one ``service`` (``"http"``, ``"smtp"``): the numeric
    columns that are not constant on those rows, raw; ``"normal."`` rows normal (0), attacks 1."""
    check_choice("service", service, KDD_SERVICES)
    from nrf.data.kddcup import NUMERIC, load_kddcup99

    data = load_kddcup99(root, scale="none")
    column = data.feature_names.index(f"service={service}")
    rows = data.features[:, column] == 1
    X = data.features[rows][:, : len(NUMERIC)].astype(np.float64)
    X = X[:, X.std(axis=0) > 0]
    y = (data.raw_labels[rows] != "normal.").astype(np.int64)
    return AnomalyTask(f"kdd-{service}", X, y)
