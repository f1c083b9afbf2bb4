"""``nrf demo`` runs end to end and says that nothing is trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from nrf.cli.main import main


@pytest.mark.slow
def test_demo_writes_figures_and_is_honest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path / "no-data-here"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "No model is trained" in text
    assert "MNIST: not found" in text
    for name in ("synthetic_datasets.png", "untrained_gmm_model.png", "digits.png"):
        path = out / name
        assert path.stat().st_size > 5_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "mnist.png").exists()
