"""Downloads from a local HTTP server: checksums, atomic writes, mirrors, archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nrf.data import ChecksumError, DataFormatError, download
from nrf.data.mnist import FILES as MNIST_FILES
from nrf.data.registry import DATASETS, DatasetSpec, RemoteFile, dataset_status, fetch

if TYPE_CHECKING:
    from conftest import LocalServer


def files_under(folder: Path) -> list[Path]:
    """Every file (hidden ones included) below ``folder``."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_spec(*files: RemoteFile, subdir: str = "toy") -> DatasetSpec:
    return DatasetSpec(
        name="toy",
        subdir=subdir,
        description="a toy data set",
        files=files,
        required=tuple((f.name,) for f in files),
    )


@pytest.fixture
def toy(http_server: LocalServer) -> tuple[DatasetSpec, dict[str, bytes]]:
    contents = {"a.bin": bytes(range(256)) * 40, "b.txt": b"hello\n" * 1000}
    spec = make_spec(
        RemoteFile("a.bin", http_server.put("a.bin", contents["a.bin"]), "md5", md5(contents["a.bin"])),
        RemoteFile("b.txt", http_server.put("b.txt", contents["b.txt"]), "sha256", sha256(contents["b.txt"])),
    )
    return spec, contents


def test_download_and_no_second_download(
    tmp_path: Path, http_server: LocalServer, toy: tuple[DatasetSpec, dict[str, bytes]]
) -> None:
    spec, contents = toy
    root = tmp_path / "data"
    folder = download("toy", root, spec=spec, progress=False)
    assert folder == root / "toy"
    for name, content in contents.items():
        assert (folder / name).read_bytes() == content
    assert sorted(http_server.requests) == ["/a.bin", "/b.txt"]
    assert files_under(root) == [folder / "a.bin", folder / "b.txt"]

    assert download("toy", root, spec=spec, progress=False) == folder
    assert len(http_server.requests) == 2

    download("toy", root, spec=spec, progress=False, force=True)
    assert len(http_server.requests) == 4
    assert files_under(root) == [folder / "a.bin", folder / "b.txt"]


def test_corrupt_local_copy_is_downloaded_again(
    tmp_path: Path, http_server: LocalServer, toy: tuple[DatasetSpec, dict[str, bytes]]
) -> None:
    spec, contents = toy
    root = tmp_path / "data"
    download("toy", root, spec=spec, progress=False)
    (root / "toy" / "a.bin").write_bytes(b"tampered")
    download("toy", root, spec=spec, progress=False)
    assert http_server.requests.count("/a.bin") == 2
    assert http_server.requests.count("/b.txt") == 1
    assert (root / "toy" / "a.bin").read_bytes() == contents["a.bin"]


def test_default_root_is_env_var(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    toy: tuple[DatasetSpec, dict[str, bytes]],
    isolated_data_env: Path,
) -> None:
    spec, _ = toy
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path / "env"))
    assert download("toy", spec=spec, progress=False) == tmp_path / "env" / "toy"
    monkeypatch.delenv("NRF_DATA_DIR")
    assert download("toy", spec=spec, progress=False) == isolated_data_env / "toy"
    assert (isolated_data_env / "toy" / "b.txt").is_file()


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_wrong_checksum_leaves_nothing(tmp_path: Path, http_server: LocalServer, algorithm: str) -> None:
    url = http_server.put("c.bin", b"the real content")
    wrong = hashlib.new(algorithm, b"something else").hexdigest()
    spec = make_spec(RemoteFile("c.bin", url, algorithm, wrong))
    root = tmp_path / "data"
    with pytest.raises(ChecksumError) as info:
        download("toy", root, spec=spec, progress=False)
    assert info.value.expected == wrong
    assert info.value.actual == hashlib.new(algorithm, b"the real content").hexdigest()
    assert algorithm in str(info.value)
    assert http_server.requests == ["/c.bin"]
    assert files_under(root) == []


def test_wrong_checksum_keeps_an_existing_file_untouched(tmp_path: Path, http_server: LocalServer) -> None:
    url = http_server.put("c.bin", b"new content")
    spec = make_spec(RemoteFile("c.bin", url, "md5", md5(b"expected")))
    old = tmp_path / "data" / "toy" / "c.bin"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old content")
    with pytest.raises(ChecksumError):
        download("toy", tmp_path / "data", spec=spec, progress=False)
    assert files_under(tmp_path / "data") == [old]
    assert old.read_bytes() == b"old content"


def test_404_is_an_os_error_and_leaves_nothing(tmp_path: Path, http_server: LocalServer) -> None:
    spec = make_spec(RemoteFile("gone.bin", f"{http_server.url}/gone.bin", "md5", md5(b"")))
    root = tmp_path / "data"
    with pytest.raises(OSError, match=r"gone\.bin") as info:
        download("toy", root, spec=spec, progress=False)
    assert not isinstance(info.value, DataFormatError)
    assert "404" in str(info.value)
    assert http_server.requests == ["/gone.bin"]
    assert files_under(root) == []


def test_fetch_directly(tmp_path: Path, http_server: LocalServer) -> None:
    content = b"\x00\x01" * 5000
    url = http_server.put("d/e.bin", content)
    remote = RemoteFile("e.bin", url, "sha256", sha256(content))
    dest = tmp_path / "out" / "deep" / "e.bin"
    assert fetch(url, dest, remote, progress=False) == dest
    assert dest.read_bytes() == content
    assert files_under(tmp_path / "out") == [dest]


def test_checksum_of_uncompressed(tmp_path: Path, http_server: LocalServer) -> None:
    raw = b"uncompressed payload " * 500
    packed = gzip.compress(raw)
    url = http_server.put("f.gz", packed)
    root = tmp_path / "data"

    bad = make_spec(RemoteFile("f.gz", url, "md5", md5(packed), checksum_of="uncompressed"))
    with pytest.raises(ChecksumError):
        download("toy", root, spec=bad, progress=False)
    assert files_under(root) == []

    good = make_spec(RemoteFile("f.gz", url, "md5", md5(raw), checksum_of="uncompressed"))
    folder = download("toy", root, spec=good, progress=False)
    assert (folder / "f.gz").read_bytes() == packed
    download("toy", root, spec=good, progress=False)
    assert http_server.requests == ["/f.gz", "/f.gz"]


def test_checksum_of_uncompressed_on_a_non_gzip_file(tmp_path: Path, http_server: LocalServer) -> None:
    url = http_server.put("g.gz", b"this is not gzip")
    spec = make_spec(RemoteFile("g.gz", url, "md5", md5(b"this is not gzip"), checksum_of="uncompressed"))
    with pytest.raises(DataFormatError, match="gzip"):
        download("toy", tmp_path / "data", spec=spec, progress=False)
    assert files_under(tmp_path / "data") == []


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tar_gz_is_extracted_into_the_root(tmp_path: Path, http_server: LocalServer) -> None:
    members = {"toy-batches/one.bin": b"1" * 100, "toy-batches/two.bin": b"22"}
    archive = _tar_gz(members)
    url = http_server.put("toy.tar.gz", archive)
    spec = make_spec(RemoteFile("toy.tar.gz", url, "md5", md5(archive), extract=True), subdir="toy-batches")
    root = tmp_path / "data"
    assert download("toy", root, spec=spec, progress=False) == root / "toy-batches"
    for name, data in members.items():
        assert (root / name).read_bytes() == data
    assert files_under(root) == sorted([root / "toy.tar.gz", *(root / n for n in members)])

    (root / "toy-batches" / "two.bin").write_bytes(b"changed")
    download("toy", root, spec=spec, progress=False)
    assert http_server.requests == ["/toy.tar.gz"]  # archive verified locally, not fetched again
    assert (root / "toy-batches" / "two.bin").read_bytes() == b"22"
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_tar_gz_with_unsafe_member_is_not_written_outside(tmp_path: Path, http_server: LocalServer) -> None:
    archive = _tar_gz({"../escaped.bin": b"x"})
    url = http_server.put("bad.tar.gz", archive)
    spec = make_spec(RemoteFile("bad.tar.gz", url, "md5", md5(archive), extract=True))
    root = tmp_path / "data"
    with pytest.raises(tarfile.TarError):
        download("toy", root, spec=spec, progress=False)
    assert not (tmp_path / "escaped.bin").exists()
    assert [p.name for p in root.iterdir()] == ["bad.tar.gz"]


@pytest.mark.parametrize("suffix", ["", "/"])
def test_mirror_replaces_the_base_url(tmp_path: Path, http_server: LocalServer, suffix: str) -> None:
    content = b"mirrored"
    http_server.put("mirror/sub/h.bin", content)
    spec = make_spec(
        RemoteFile("local-h.bin", "http://example.invalid/original/path/h.bin", "md5", md5(content))
    )
    folder = download(
        "toy", tmp_path / "data", spec=spec, progress=False, mirror=f"{http_server.url}/mirror/sub{suffix}"
    )
    assert http_server.requests == ["/mirror/sub/h.bin"]
    assert (folder / "local-h.bin").read_bytes() == content


def _fake_mnist(http_server: LocalServer) -> None:
    for stem in MNIST_FILES:
        http_server.put(f"mnist/{stem}.gz", gzip.compress(b"not the real " + stem.encode()))


def test_mnist_from_a_fake_mirror_fails_its_checksum(tmp_path: Path, http_server: LocalServer) -> None:
    _fake_mnist(http_server)
    root = tmp_path / "data"
    with pytest.raises(ChecksumError, match="md5") as info:
        download("mnist", root, mirror=f"{http_server.url}/mnist", progress=False)
    assert info.value.expected in {md5_ for md5_, _ in MNIST_FILES.values()}
    assert len(http_server.requests) == 1
    assert http_server.requests[0].startswith("/mnist/")
    assert http_server.requests[0].endswith("-ubyte.gz")
    assert files_under(root) == []
    assert dataset_status("mnist", root).missing == [alt[0] for alt in DATASETS["mnist"].required]


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name"):
        download("nosuch", tmp_path)
