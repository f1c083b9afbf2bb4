"""``nrf demo`` trains, evaluates next to the paper and writes its run directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from nrf.cli.main import main


@pytest.mark.slow
def test_demo_trains_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "200", "--threads", "1"]) == 0
    text = capsys.readouterr().out
    for row in ("generation", "revision", "oracle", "paper (Table I"):
        assert row in text
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "plots" / "fig3-step00000200.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "summary.json").exists()
    # Running it again replaces the demo's own run instead of refusing.
    assert main(["demo", "--out", str(out), "--steps", "10", "--threads", "1"]) == 0
