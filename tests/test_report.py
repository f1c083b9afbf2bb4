"""``nrf.training.report.write_report``: one self-contained HTML page per run directory."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nrf.training.report import write_report

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVENT_MESSAGE = "non-finite loss at step 700; rolled back to step 500; learning rates x0.5 (<inf>)"
CONFIG_TEXT = """name = "gmm-inclusive"
seed = 3

[optim]
lr_energy = 0.001
steps = 1000
"""


def _png(path: Path, colour: str, n_points: int) -> bytes:
    """A small matplotlib PNG at ``path``; returns its bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 3), dpi=60)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(n_points)
    pts = rng.normal(size=(n_points, 2))
    ax.scatter(pts[:, 0], pts[:, 1], s=4, color=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path.read_bytes()


def _make_run(root: Path) -> dict[str, bytes]:
    """A fake run directory; returns the PNG bytes of each plot by file name."""
    root.mkdir()
    lines: list[str] = []
    for step in range(0, 1001, 20):
        lines.append(
            json.dumps(
                {
                    "phase": "train",
                    "step": step,
                    "epoch": step // 500,
                    "time": step * 0.12,
                    "loss": 2.0 * math.exp(-step / 300) + 0.1,
                    "energy_data": -1.0 - step / 1000,
                    "energy_samples": 0.8 - step / 2000,
                    "lr_energy": 0.001 if step < 700 else 0.0005,
                }
            )
        )
        if step and step % 250 == 0:
            lines.append(
                json.dumps(
                    {
                        "phase": "eval",
                        "step": step,
                        "epoch": step // 500,
                        "time": step * 0.12 + 1,
                        "covered_modes": 10 + step / 50,
                        "realistic_ratio": 0.5 + step / 2500,
                    }
                )
            )
        if step == 700:
            lines.append(
                json.dumps(
                    {
                        "phase": "event",
                        "step": 700,
                        "time": 80.0,
                        "event": "rollback",
                        "message": EVENT_MESSAGE,
                    }
                )
            )
    lines.insert(10, '{"phase": "train", "step": 180, "loss": 0.4')  # truncated: malformed
    (root / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    summary = {
        "status": "completed",
        "step": 1000,
        "final": {"covered_modes": 30.125, "realistic_ratio": 0.9375},
        "name": "gmm-inclusive",
        "wall_seconds": 123.4,
    }
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "config.toml").write_text(CONFIG_TEXT)
    plots = root / "plots"
    return {
        "samples-step000500.png": _png(plots / "samples-step000500.png", "tab:orange", 50),
        "samples-step001000.png": _png(plots / "samples-step001000.png", "tab:green", 80),
        "density-step000500.png": _png(plots / "density-step000500.png", "tab:purple", 60),
    }


def _data_uris(page: str) -> list[str]:
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    import base64

    run = tmp_path / "run"
    pngs = _make_run(run)
    out = write_report(run)
    assert out == run / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not list(run.glob(".report.html.*"))  # the temp file was renamed away

    # Self-contained: nothing to fetch.
    lowered = page.lower()
    for needle in ('src="http', "<script src", 'href="http', "<link", "url(", "@import"):
        assert needle not in lowered, needle
    assert not re.search(r'src="(?!data:image/png;base64,)', page)

    # Header and final metrics.
    assert "<h1>gmm-inclusive</h1>" in page
    assert "completed" in page
    assert "1000" in page
    assert "123.4" in page
    assert "covered_modes" in page
    assert "30.12" in page
    assert "realistic_ratio" in page
    assert "0.9375" in page

    # The malformed line is skipped and reported.
    assert "1 malformed line in metrics.jsonl skipped" in page

    # The event message, escaped.
    assert "rollback" in page
    assert "(&lt;inf&gt;)" in page
    assert "<inf>" not in page

    # The config text, verbatim apart from escaping.
    assert "<pre>" in page
    assert "name = &quot;gmm-inclusive&quot;" in page
    assert "[optim]\nlr_energy = 0.001\nsteps = 1000" in page

    # Images: every one a real PNG; the plots are exactly the latest of each kind.
    uris = _data_uris(page)
    decoded = [base64.b64decode(u) for u in uris]
    assert all(d.startswith(_PNG_MAGIC) for d in decoded)
    assert pngs["samples-step001000.png"] in decoded
    assert pngs["density-step000500.png"] in decoded
    assert pngs["samples-step000500.png"] not in decoded
    assert "samples-step001000.png" in page
    assert "samples-step000500.png" not in page
    assert "step 1000" in page
    assert "density — step 500" in page
    # Curves: loss, energy (both series in one panel), lr_energy; covered_modes, realistic_ratio.
    assert len(decoded) == 2 + 3 + 2
    assert 'alt="energy_data, energy_samples"' in page
    assert 'alt="loss"' in page
    assert 'alt="covered_modes"' in page


def test_report_custom_out_and_partial_run(tmp_path: Path) -> None:
    run = tmp_path / "killed"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"phase": "train", "step": 10, "time": 1.5, "loss": 1.0}\n'
        '{"phase": "train", "step": 20, "time": 3.0, "loss": NaN}\n'
        '{"phase": "eval", "step": 20, "time": 3.5, "covered_modes": 4, "note": "<b>x</b>"}\n'
        "[1, 2]\n"
        '{"phase": "train", "step": 3'
    )
    out = write_report(run, tmp_path / "elsewhere" / "page.html")
    assert out == tmp_path / "elsewhere" / "page.html"
    page = out.read_text(encoding="utf-8")
    assert "<h1>killed</h1>" in page
    assert "2 malformed lines in metrics.jsonl skipped" in page
    assert "summary.json is missing" in page
    assert "From the last eval line (step 20)" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page
    assert "No PNG figures" in page
    assert "No events" in page
    assert not (run / "report.html").exists()


def test_report_summary_only(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "summary.json").write_text('{"status": "diverged", "step": 7, "name": "x<y", "final": {}}')
    page = write_report(run).read_text(encoding="utf-8")
    assert "<h1>x&lt;y</h1>" in page
    assert "diverged" in page
    assert "metrics.jsonl is missing" in page


def test_long_run_with_rollback_replay(tmp_path: Path) -> None:
    from nrf.training.report import _series, _smooth

    run = tmp_path / "long"
    run.mkdir()
    lines = [json.dumps({"phase": "train", "step": s, "loss": 1.0}) for s in range(0, 300)]
    lines.append(json.dumps({"phase": "event", "step": 250, "event": "rollback", "message": "back to 200"}))
    lines += [json.dumps({"phase": "train", "step": s, "loss": 0.5}) for s in range(200, 400)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    records = [json.loads(line) for line in lines]
    steps, values = _series([r for r in records if r["phase"] == "train"])["loss"]
    assert steps == [float(s) for s in range(400)]  # replayed steps: the later line wins
    assert values[199] == 1.0
    assert values[200] == 0.5
    smoothed = _smooth([1.0, float("nan"), 3.0, 5.0], 2)
    assert smoothed[:3] == [1.0, 1.0, 3.0]
    assert smoothed[3] == 4.0
    page = write_report(run).read_text(encoding="utf-8")
    assert "moving average" in page
    assert "back to 200" in page


def test_missing_run_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither metrics\.jsonl nor summary\.json"):
        write_report(tmp_path / "empty")


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    from matplotlib.image import imread

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (the CI installs it and sets NRF_REQUIRE_BROWSER)")
    run = tmp_path / "run"
    _make_run(run)
    page = write_report(run)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    assert shot.read_bytes()[:8] == _PNG_MAGIC
    img = imread(shot)[..., :3]  # floats in [0, 1]
    assert img.shape[0] >= 1000
    assert img.shape[1] >= 1000
    pixels = (np.round(img * 255).astype(np.int32)).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 200  # text, antialiased curves: not a flat page
    non_white = np.any(pixels < 245, axis=1).mean()
    assert non_white > 0.02
    # The curves were drawn: matplotlib's first colour (tab:blue, #1f77b4) is on screen,
    # and the page's own CSS never uses it.
    near_blue = np.abs(pixels - np.array([31, 119, 180])).max(axis=1) < 30
    assert near_blue.sum() > 300


def test_report_draws_forward_and_reverse_kl_in_one_panel(tmp_path: Path) -> None:
    run = tmp_path / "rbm"
    run.mkdir()
    lines = [json.dumps({"phase": "train", "step": s, "loss": 1.0 / (1 + s)}) for s in range(0, 100, 10)]
    lines += [
        json.dumps({"phase": "eval", "step": s, "kl_forward": 3.0 - s / 50, "kl_reverse": 1.0 + s / 50})
        for s in (25, 50, 75)
    ]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    page = write_report(run).read_text(encoding="utf-8")
    assert 'alt="kl_forward, kl_reverse"' in page
    assert 'alt="kl_forward"' not in page
    assert 'alt="kl_reverse"' not in page
    assert len(_data_uris(page)) == 2  # loss, and the one KL panel


def test_panels_group_energies_and_gradient_norms() -> None:
    from nrf.training.report import _panels

    keys = ("energy_data", "grad_norm_gen", "loss", "grad_norm_ce", "grad_cosine", "energy_samples")
    series = {k: ([1.0], [0.0]) for k in keys}
    assert _panels(series) == [
        ("loss", ["loss"]), ("energy", ["energy_data", "energy_samples"]),
        ("gradient norms", ["grad_norm_ce", "grad_norm_gen"]), ("grad_cosine", ["grad_cosine"]),
    ]  # fmt: skip


@pytest.mark.parametrize("value", [1e-4, 0.0, 1234.5678])
def test_a_constant_panel_is_readable(value: float) -> None:
    """A constant learning rate drew an axis from -1 to 1 (or a tiny span) with an offset
    label over the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from nrf.training.report import _readable_y_axis

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 10, 20], [value] * 3)
    _readable_y_axis(ax, [value] * 3)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    assert low < value < high
    span = high - low
    assert span == pytest.approx(0.2 * abs(value) if value else 2.0)
    assert ax.yaxis.get_offset_text().get_text() == ""
    # Ticks land inside the axis and read as the value itself.
    labels = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert labels


def _chromium() -> str | None:
    """The browser, or None; with NRF_REQUIRE_BROWSER set (the CI) a missing one fails."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None and os.environ.get("NRF_REQUIRE_BROWSER"):
        pytest.fail("NRF_REQUIRE_BROWSER is set but chromium is not installed")
    return browser


_PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const sections = [...document.querySelectorAll("section")];
  const wide = sections.filter(s => s.scrollWidth > s.clientWidth + 2).length;
  document.body.setAttribute("data-probe", `${imgs.length} ${broken} ${wide}`);
});
</script>"""


def _probe_in_chromium(browser: str, page: Path, tmp: Path) -> tuple[int, int, int]:
    """(images, images that failed to decode, sections wider than the page) as Chromium
    lays the page out."""
    tmp.mkdir(parents=True, exist_ok=True)
    probed = tmp / "probed.html"
    probed.write_text(
        page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
    )
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", "--window-size=1200,1600", "--virtual-time-budget=5000",
         "--dump-dom", probed.resolve().as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    match = re.search(r'data-probe="(\d+) (\d+) (\d+)"', done.stdout)
    assert match, f"chromium did not run the page's script: {done.stderr[-500:]}"
    return int(match[1]), int(match[2]), int(match[3])


def _points_run(tmp: Path) -> Path:
    from nrf.training.config import load_config
    from nrf.training.run import train
    from training_helpers import write_config

    run, _ = train(load_config(write_config(tmp, steps=40, eval_every=20)))
    return run


def _images_run(tmp: Path) -> Path:
    from nrf.training.config import load_config
    from nrf.training.run import train
    from training_helpers import write_config

    cfg = write_config(tmp, data="digits", data_extra='scale = "symmetric"', steps=20, eval_every=10)
    run, _ = train(
        load_config(cfg, ["model.energy_args.event_shape=[1, 8, 8]", "train.evaluators=['samples']"])
    )
    return run


def _transitions_run(tmp: Path) -> Path:
    from training_helpers import short_trajectory_run

    return short_trajectory_run(tmp, "ball_ff.toml")[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["points", "images", "transitions"])
def test_every_report_kind_lays_out_in_chromium(tmp_path: Path, kind: str) -> None:
    """Reports of real runs of each kind of data: every figure decodes in the browser, the
    run's own figures are there, and no section is wider than the page."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (the CI installs it and sets NRF_REQUIRE_BROWSER)")
    run = {"points": _points_run, "images": _images_run, "transitions": _transitions_run}[kind](tmp_path)
    figures = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert figures, f"a {kind} run wrote no figure"
    page = write_report(run)
    images, broken, wide = _probe_in_chromium(browser, page, tmp_path)
    assert broken == 0
    assert images >= 2  # curves and the run's figures
    assert wide == 0
    # The probe sees a figure that does not decode and a section wider than the page.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><section style="width:300px"><div style="width:5000px">x</div></section>'
        '<img src="data:image/png;base64,AAAA"></body></html>'
    )
    assert _probe_in_chromium(browser, bad, tmp_path / "b")[1:] == (1, 1)
