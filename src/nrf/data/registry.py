"""The real data sets nrf knows: where they come from, how to check them, where they are.

``nrf data list`` shows what is found; ``nrf data download NAME`` fetches a data set from
its canonical public address, verifies its checksum and writes it atomically (a
temporary file in the target folder, fsync, rename), so an interrupted download never
leaves a half-written file under the final name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nrf._checks import check_choice
from nrf._console import stderr_is_terminal
from nrf._files import file_mode
from nrf.data import cifar, kddcup, mnist
from nrf.data.errors import ChecksumError, DataFormatError, DataNotFoundError
from nrf.data.paths import download_root, find_file

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file.

    ``checksum_of`` is ``"file"`` (hash of the bytes downloaded) or ``"uncompressed"``
    (hash of the gunzipped content, for MNIST whose published md5 values are of the raw
    IDX files). With ``extract`` the file is a tar.gz unpacked into the data root.
    """

    name: str
    url: str
    algorithm: str
    digest: str
    checksum_of: str = "file"
    extract: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """A data set: its folder, the files that mark it present, and how to download it."""

    name: str
    subdir: str
    description: str
    files: tuple[RemoteFile, ...]
    required: tuple[tuple[str, ...], ...]


def _mnist_files(base: str) -> tuple[RemoteFile, ...]:
    return tuple(
        RemoteFile(f"{stem}.gz", f"{base}{stem}.gz", "md5", md5, checksum_of="uncompressed")
        for stem, (md5, _) in mnist.FILES.items()
    )


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        subdir=mnist.SUBDIR,
        description="MNIST handwritten digits, IDX format (60,000 train + 10,000 test)",
        files=_mnist_files("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        required=tuple((f"{stem}.gz", stem) for stem in mnist.FILES),
    ),
    "kddcup99": DatasetSpec(
        name="kddcup99",
        subdir=kddcup.SUBDIR,
        description="KDD Cup 1999 network intrusion data, 10 % file (494,021 rows)",
        files=(
            RemoteFile(
                "kddcup.data_10_percent.gz",
                "http://kdd.ics.uci.edu/databases/kddcup99/kddcup.data_10_percent.gz",
                "sha256",
                kddcup.SHA256_GZ,
            ),
        ),
        required=(kddcup.FILENAMES,),
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        subdir=cifar.SUBDIR,
        description="CIFAR-10 python batches (50,000 train + 10,000 test, 32 x 32 colour)",
        files=(
            RemoteFile(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "md5",
                "c58f30108f718f92721af3b95e74349a",
                extract=True,
            ),
        ),
        required=tuple((n,) for n in cifar.TRAIN_BATCHES + cifar.TEST_BATCHES),
    ),
}


@dataclass(frozen=True)
class DatasetStatus:
    name: str
    description: str
    found: dict[str, Path]
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def dataset_status(name: str, root: str | os.PathLike[str] | None = None) -> DatasetStatus:
    """Which of a data set's files are found, and where (see :mod:`nrf.data.paths`)."""
    check_choice("name", name, tuple(DATASETS))
    spec = DATASETS[name]
    found: dict[str, Path] = {}
    missing: list[str] = []
    for alternatives in spec.required:
        try:
            found[alternatives[0]] = find_file(name, spec.subdir, list(alternatives), root)
        except DataNotFoundError:
            missing.append(alternatives[0])
    return DatasetStatus(name, spec.description, found, missing)


def _open_content(path: Path, remote: RemoteFile) -> BinaryIO:
    if remote.checksum_of == "uncompressed":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _content_digest(path: Path, remote: RemoteFile) -> str:
    h = hashlib.new(remote.algorithm)
    try:
        with _open_content(path, remote) as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataFormatError(path, f"corrupt or truncated gzip file ({exc})") from exc
    return h.hexdigest()


def _is_valid(path: Path, remote: RemoteFile) -> bool:
    if not path.is_file():
        return False
    try:
        return _content_digest(path, remote) == remote.digest
    except DataFormatError:
        return False


def fetch(
    url: str,
    dest: Path,
    remote: RemoteFile,
    *,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it against ``remote``'s checksum.

    The bytes go to a temporary file beside ``dest``; only a verified file is renamed to
    ``dest``. A failed download or a checksum mismatch leaves nothing behind.
    """
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                raise OSError(f"could not download {url}: {exc}") from exc
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not (progress and stderr_is_terminal()),
                ) as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        try:
            actual = _content_digest(tmp, remote)
        except DataFormatError as exc:
            raise ChecksumError(url, remote.algorithm, remote.digest, f"unreadable content ({exc})") from exc
        if actual != remote.digest:
            raise ChecksumError(url, remote.algorithm, remote.digest, actual)
        os.chmod(tmp, file_mode())  # mkstemp's file is private; the data is the user's
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def _extract(archive: Path, root: Path) -> None:
    """Unpack a tar.gz into ``root`` through a temporary folder (no absolute or .. paths)."""
    staging = Path(tempfile.mkdtemp(prefix=".extract.", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:  # Python < 3.10.12 / 3.11.4: check the members ourselves
                for member in tar.getmembers():
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                        raise DataFormatError(archive, f"unsafe archive member {member.name!r}")
                tar.extractall(staging)
        for entry in staging.iterdir():
            target = root / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    mirror: str | None = None,
    force: bool = False,
    progress: bool = True,
    spec: DatasetSpec | None = None,
) -> Path:
    """Download data set ``name`` into ``<root>/<subdir>/`` and return that folder.

    ``root`` defaults to ``$NRF_DATA_DIR``, else ``~/.cache/nrf``. ``mirror`` replaces
    the base address of every file (the file names stay), e.g. a local copy. Files
    already present with the right checksum are not downloaded again unless ``force``.
    ``spec`` overrides the built-in description (for data sets nrf does not ship).
    """
    if spec is None:
        check_choice("name", name, tuple(DATASETS))
        spec = DATASETS[name]
    base = download_root(root)
    folder = base / spec.subdir
    for remote in spec.files:
        url = remote.url if mirror is None else mirror.rstrip("/") + "/" + remote.url.rsplit("/", 1)[-1]
        dest = (base if remote.extract else folder) / remote.name
        if force or not _is_valid(dest, remote):
            fetch(url, dest, remote, progress=progress)
        if remote.extract:
            _extract(dest, base)
    return folder
