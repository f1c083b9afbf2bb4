"""``nrf data list`` and ``nrf data download`` through :func:`nrf.cli.main.main`."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nrf.cli.main import main
from nrf.data.cifar import TEST_BATCHES, TRAIN_BATCHES
from nrf.data.mnist import FILES as MNIST_FILES

if TYPE_CHECKING:
    from conftest import LocalServer


def status_line(out: str, name: str) -> str:
    (line,) = [ln for ln in out.splitlines() if ln.startswith(f"{name} ")]
    return line


def test_list_with_nothing_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_data_env: Path
) -> None:
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("search order: ")
    assert str(tmp_path) in out.splitlines()[0]
    assert str(isolated_data_env) in out.splitlines()[0]
    for name in ("mnist", "kddcup99", "cifar10"):
        assert re.match(rf"{name}\s+missing\s", status_line(out, name))
        assert f"(nrf data download {name})" in out
    assert " ok " not in out


def test_list_found_partial_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for stem in MNIST_FILES:
        (tmp_path / "mnist").mkdir(exist_ok=True)
        (tmp_path / "mnist" / f"{stem}.gz").write_bytes(b"")
    (tmp_path / "kddcup.data_10_percent").write_bytes(b"")  # directly in the root
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in TRAIN_BATCHES[:2]:
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.match(r"mnist\s+found\s", status_line(out, "mnist"))
    assert re.match(r"kddcup99\s+found\s", status_line(out, "kddcup99"))
    assert re.match(r"cifar10\s+partial\s", status_line(out, "cifar10"))
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in out
    assert str(tmp_path / "kddcup.data_10_percent") in out
    missing = [ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("missing ")]
    assert missing == list(TRAIN_BATCHES[2:] + TEST_BATCHES)


def test_list_uses_env_var(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kddcup99").mkdir()
    (tmp_path / "kddcup99" / "kddcup.data_10_percent.gz").write_bytes(b"")
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"kddcup99\s+found\s", status_line(out, "kddcup99"))
    assert re.match(r"mnist\s+missing\s", status_line(out, "mnist"))


def test_download_fake_mnist_fails_with_one_line(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for stem in MNIST_FILES:
        http_server.put(f"{stem}.gz", gzip.compress(b"fake " + stem.encode()))
    root = tmp_path / "data"
    code = main(["data", "download", "mnist", "--root", str(root), "--mirror", http_server.url, "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nrf data: error: ")
    assert "checksum" in lines[0]
    assert http_server.url in lines[0]
    assert len(http_server.requests) == 1
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_download_from_an_empty_mirror(
    tmp_path: Path, http_server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    code = main(["data", "download", "cifar10", "--root", str(root), "--mirror", http_server.url, "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("nrf data: error: could not download")
    assert "cifar-10-python.tar.gz" in err
    assert http_server.requests == ["/cifar-10-python.tar.gz"]
    assert [p for p in root.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "argv",
    [["data", "download"], ["data"], ["data", "list", "--bogus"]],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["nosuch", "foo", "MNIST", ""])
def test_unknown_dataset_is_a_one_line_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "download", name, "--root", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"nrf data: error: unknown data set {name!r}; known: cifar10, kddcup99, mnist"
    ]
    assert list(tmp_path.iterdir()) == []


def test_download_help_lists_the_data_sets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "download", "--help"])
    assert "cifar10, kddcup99, mnist" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inception"], "prepare inception needs --from FILE"),
        (["inception", "--from", "no-such-file.pth"], "source: no file no-such-file.pth"),
        (["mnist-features", "--from", "x.pth"], "--from and --sha256 are for `prepare inception`"),
        (["inception", "--from", "{file}", "--sha256", "abc"], "sha256 must be 64 hex digits"),
    ],
)
def test_prepare_inception_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "weights.pth"
    file.write_bytes(b"not a state dict")
    args = [a.replace("{file}", str(file)) for a in argv]
    assert main(["data", "prepare", *args, "--root", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("nrf data: error: ")
    assert message in err[0]
    assert not (tmp_path / "data").exists()
