"""A self-contained HTML report of one training run directory.

:func:`write_report` reads what the trainer leaves in a run directory::

    RUN_DIR/
      config.toml     the resolved config (shown verbatim)
      metrics.jsonl   one JSON object per line, "phase" = "train" | "eval" | "event"
      summary.json    status, step, final metrics, name, wall_seconds
      plots/          PNG figures named like ``samples-step000500.png``

and writes ONE HTML page (default ``RUN_DIR/report.html``) with inline CSS and every
image embedded as a base64 ``data:image/png`` URI, so the page can be mailed, attached
to an issue or opened offline. Any of the inputs may be missing or partial (a run
killed early): malformed lines of ``metrics.jsonl`` are skipped and counted, and the
page says what it could not find. Only matplotlib (Agg, no pyplot) and the standard
library are used.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrf._files import write_text_atomic
from nrf.training.rundir import RunDir

__all__ = ["write_report"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Keys of a metrics line that are bookkeeping, not metrics.
_SUMMARY_HEADER_KEYS = frozenset({"status", "step", "final", "name", "wall_seconds"})
_RESERVED = frozenset({"phase", "step", "epoch", "time", "event", "message"})
_STATUS_COLOURS = {
    "completed": "#1b7f3b",
    "running": "#5b4fc7",
    "diverged": "#b42318",
    "stopped": "#b54708",
}
_EVENT_LINE_COLOUR = "#d62728"


@dataclass
class _RunData:
    """Everything read from one run directory."""

    run_dir: Path
    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    other_lines: int = 0
    skipped_lines: int = 0
    has_metrics: bool = False
    summary: dict[str, Any] | None = None
    summary_error: str | None = None
    config_text: str | None = None
    plots: list[tuple[str, int | None, Path]] = field(default_factory=list)
    bad_plots: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- reading


def _read_metrics(path: Path, data: _RunData) -> None:
    """Split ``metrics.jsonl`` into train / eval / event records; count bad lines."""
    data.has_metrics = True
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                data.skipped_lines += 1
                continue
            if not isinstance(record, dict):
                data.skipped_lines += 1
                continue
            phase = record.get("phase")
            if phase == "train":
                data.train.append(record)
            elif phase == "eval":
                data.evals.append(record)
            elif phase == "event":
                data.events.append(record)
            else:
                data.other_lines += 1


def _read_summary(path: Path, data: _RunData) -> None:
    """Load ``summary.json``; a partial or non-object file is noted, not fatal."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        data.summary_error = f"summary.json could not be parsed ({exc})"
        return
    if not isinstance(loaded, dict):
        data.summary_error = "summary.json does not hold a JSON object"
        return
    data.summary = loaded


def _read_plots(plots_dir: Path, data: _RunData) -> None:
    """Keep the latest PNG of each kind (the name's prefix before ``-step``)."""
    latest: dict[str, tuple[int | None, Path]] = {}
    for path in sorted(plots_dir.iterdir()):
        if not path.is_file() or path.suffix.lower() != ".png":
            continue
        kind, step = RunDir.plot_kind_and_step(path)
        previous = latest.get(kind)
        if previous is None or (step is not None and (previous[0] is None or step > previous[0])):
            latest[kind] = (step, path)
    data.plots = [(kind, step, path) for kind, (step, path) in sorted(latest.items())]


def _load(run_dir: Path) -> _RunData:
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} does not exist")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} is not a directory")
    layout = RunDir(run_dir)
    metrics_path, summary_path = layout.metrics, layout.summary
    if not metrics_path.is_file() and not summary_path.is_file():
        raise FileNotFoundError(
            f"{str(run_dir)!r} holds neither metrics.jsonl nor summary.json; is it a training run directory?"
        )
    data = _RunData(run_dir=run_dir)
    if metrics_path.is_file():
        _read_metrics(metrics_path, data)
    if summary_path.is_file():
        _read_summary(summary_path, data)
    if layout.config.is_file():
        data.config_text = layout.config.read_text(encoding="utf-8", errors="replace")
    if layout.plots.is_dir():
        _read_plots(layout.plots, data)
    return data


# --------------------------------------------------------------------------- values


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (bools are not), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _fmt(value: Any) -> str:
    """A short, unescaped text form of a metric value."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return str(seconds)
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:d}:{secs:02d}"
    return f"{clock} ({seconds:.1f} s)"


def _series(records: Sequence[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """Per metric, ``(steps, values)`` sorted by step.

    When a step is logged more than once (the trainer rolled back and replayed it), the
    later line wins, so the curves show the trajectory the run kept.
    """
    by_key: dict[str, dict[float, float]] = {}
    for record in records:
        step = _number(record.get("step"))
        if step is None:
            continue
        for key, raw in record.items():
            if key in _RESERVED:
                continue
            value = _number(raw)
            if value is None:
                continue
            by_key.setdefault(key, {})[step] = value if math.isfinite(value) else math.nan
    out: dict[str, tuple[list[float], list[float]]] = {}
    for key, points in by_key.items():
        steps = sorted(points)
        out[key] = (steps, [points[s] for s in steps])
    return out


def _panels(series: dict[str, tuple[list[float], list[float]]]) -> list[tuple[str, list[str]]]:
    """Group metrics into panels: all ``energy_*`` together, the kNN KL estimates
    (``kl_forward``, ``kl_reverse``) together, the gradient norms ``grad_norm_*`` together,
    every other metric alone."""
    energy = sorted(k for k in series if k.startswith("energy_"))
    kl: list[str] = [k for k in ("kl_forward", "kl_reverse") if k in series]
    grads = sorted(k for k in series if k.startswith("grad_norm_"))
    panels: list[tuple[str, list[str]]] = []
    if energy:
        panels.append(("energy", energy))
    if kl:
        panels.append(("kNN KL (forward, reverse)", kl))
    if grads:
        panels.append(("gradient norms", grads))
    for key in series:
        if not key.startswith(("energy_", "grad_norm_")) and key not in kl:
            panels.append((key, [key]))
    # Loss first, then energies, then the rest in the order they were logged.
    panels.sort(key=lambda p: 0 if p[0] == "loss" else 1 if p[0] == "energy" else 2)
    return panels


# --------------------------------------------------------------------------- drawing


def _smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points that ignores NaNs (linear time)."""
    sums = [0.0]
    counts = [0]
    for v in values:
        finite = not math.isnan(v)
        sums.append(sums[-1] + (v if finite else 0.0))
        counts.append(counts[-1] + (1 if finite else 0))
    out: list[float] = []
    for i in range(1, len(sums)):
        lo = max(0, i - window)
        n = counts[i] - counts[lo]
        out.append((sums[i] - sums[lo]) / n if n else math.nan)
    return out


def _readable_y_axis(ax: Any, values: Sequence[float]) -> None:
    """Plain tick labels (no offset text, which matplotlib puts where the title is) and, for
    a constant series, an axis around its value (matplotlib's default spans -1 to 1 when
    the value is 0 and gives a tiny span with an offset otherwise)."""
    finite = [v for v in values if math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        if high - low <= 1e-9 * max(abs(low), abs(high), 1e-300):
            pad = 0.1 * abs(low) if low != 0 else 1.0
            ax.set_ylim(low - pad, high + pad)
    formatter = ax.yaxis.get_major_formatter()
    if hasattr(formatter, "set_useOffset"):
        formatter.set_useOffset(False)


def _panel_png(
    title: str,
    keys: Sequence[str],
    series: dict[str, tuple[list[float], list[float]]],
    event_steps: Iterable[float],
) -> str:
    """Draw one small panel and return it as base64 PNG text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 2.7), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, key in enumerate(keys):
        steps, values = series[key]
        colour = f"C{i % 10}"
        n = len(steps)
        if n > 60:
            ax.plot(steps, values, color=colour, alpha=0.3, linewidth=0.8)
            ax.plot(steps, _smooth(values, max(2, n // 30)), color=colour, linewidth=1.6, label=key)
        else:
            ax.plot(
                steps, values, color=colour, linewidth=1.6, marker="o" if n <= 25 else None, ms=3, label=key
            )
    for s in event_steps:
        ax.axvline(s, color=_EVENT_LINE_COLOUR, linestyle="--", linewidth=0.9, alpha=0.8)
    _readable_y_axis(ax, [v for key in keys for v in series[key][1]])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- HTML

_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1f2328; background: #f6f7f9; }
header { background: #24292f; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 6px; font-size: 22px; font-weight: 600; word-break: break-all; }
header .facts { display: flex; flex-wrap: wrap; gap: 6px 22px; font-size: 13px; color: #d0d7de; }
header .facts b { color: #fff; font-weight: 600; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; color: #fff; font-weight: 600;
         font-size: 12px; text-transform: uppercase; letter-spacing: .04em; background: #6e7781; }
main { padding: 8px 28px 32px; max-width: 1400px; }
section { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 12px 18px 16px;
          margin-top: 16px; }
h2 { font-size: 16px; margin: 0 0 10px; font-weight: 600; }
.note { color: #57606a; font-size: 12.5px; margin: 4px 0 8px; }
.warn { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 6px 12px;
        margin-top: 12px; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 4px 14px 4px 6px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
th { color: #57606a; font-weight: 600; background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, Menlo, Consolas,
         monospace; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; border: 1px solid #eaeef2; border-radius: 4px; padding: 6px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
.figs figure { max-width: 100%; }
.figs figure img { width: auto; max-width: 100%; margin: 0 auto; }
figcaption { font-size: 12px; color: #57606a; text-align: center; margin-top: 4px; }
pre { background: #f6f8fa; border: 1px solid #eaeef2; border-radius: 4px; padding: 10px 12px;
      overflow-x: auto; font-size: 12.5px; line-height: 1.4; margin: 0; }
footer { color: #8c959f; font-size: 12px; padding: 0 28px 20px; }
"""


def _esc(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _run_name(data: _RunData) -> str:
    if data.summary is not None and isinstance(data.summary.get("name"), str) and data.summary["name"]:
        return str(data.summary["name"])
    if data.config_text is not None:
        match = re.search(r'^\s*name\s*=\s*"([^"\n]*)"', data.config_text, flags=re.MULTILINE)
        if match:
            return match.group(1)
    return data.run_dir.resolve().name


def _last_number(records: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [v for v in (_number(r.get(key)) for r in records) if v is not None]
    return max(values) if values else None


def _header(data: _RunData) -> str:
    summary = data.summary or {}
    records = [*data.train, *data.evals, *data.events]
    status = summary.get("status")
    status_text = str(status) if status is not None else ("unknown" if data.summary is None else "n/a")
    colour = _STATUS_COLOURS.get(status_text, "#6e7781")
    step = summary.get("step")
    step_text = _fmt(step) if step is not None else None
    if step_text is None:
        last = _last_number(records, "step")
        step_text = f"{last:.0f} (last logged)" if last is not None else "n/a"
    wall = _number(summary.get("wall_seconds"))
    if wall is not None:
        wall_text = _fmt_seconds(wall)
    else:
        last_time = _last_number(records, "time")
        wall_text = f"{_fmt_seconds(last_time)}, last logged" if last_time is not None else "n/a"
    facts = [
        f'<span>status <span class="badge" style="background:{colour}">'
        f"{html.escape(status_text)}</span></span>",
        f"<span>step <b>{html.escape(step_text)}</b></span>",
        f"<span>wall time <b>{html.escape(wall_text)}</b></span>",
    ]
    epoch = _last_number(records, "epoch")
    if epoch is not None:
        facts.append(f"<span>epoch <b>{epoch:.0f}</b></span>")
    facts.append(f"<span>run dir <b>{html.escape(str(data.run_dir))}</b></span>")
    return (
        f'<header><h1>{html.escape(_run_name(data))}</h1><div class="facts">{"".join(facts)}</div></header>'
    )


def _warnings(data: _RunData) -> str:
    notes: list[str] = []
    if not data.has_metrics:
        notes.append("metrics.jsonl is missing: no curves or events.")
    if data.skipped_lines:
        s = "" if data.skipped_lines == 1 else "s"
        notes.append(f"{data.skipped_lines} malformed line{s} in metrics.jsonl skipped.")
    if data.summary is None:
        notes.append(
            data.summary_error or "summary.json is missing: the run may still be going or was killed."
        )
    if data.config_text is None:
        notes.append("config.toml is missing.")
    return "".join(f'<div class="warn">{html.escape(n)}</div>' for n in notes)


def _kv_table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f'<tr><td>{html.escape(k)}</td><td class="num">{_esc(v)}</td></tr>' for k, v in rows)
    return f"<table><thead><tr><th>metric</th><th>value</th></tr></thead><tbody>{body}</tbody></table>"


def _final_section(data: _RunData) -> str:
    summary = data.summary or {}
    final = summary.get("final")
    parts = ['<section id="final"><h2>Final metrics</h2>']
    if isinstance(final, dict) and final:
        parts.append('<p class="note">From summary.json.</p>')
        parts.append(_kv_table((str(k), v) for k, v in final.items()))
    elif data.evals:
        last = data.evals[-1]
        rows = [(str(k), v) for k, v in last.items() if k not in _RESERVED]
        parts.append(f'<p class="note">From the last eval line (step {_esc(last.get("step", "?"))}).</p>')
        parts.append(_kv_table(rows) if rows else '<p class="note">That line holds no metrics.</p>')
    else:
        parts.append('<p class="note">No final metrics recorded (no summary.json "final", no eval line).</p>')
    extra = [(str(k), v) for k, v in summary.items() if k not in _SUMMARY_HEADER_KEYS]
    if extra:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{_esc(v)}</td></tr>" for k, v in extra)
        parts.append(
            '<h2 style="margin-top:14px">Other summary fields</h2>'
            f"<table><thead><tr><th>field</th><th>value</th></tr></thead><tbody>{body}</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _curves_section(
    title: str, anchor: str, records: Sequence[dict[str, Any]], event_steps: list[float]
) -> str:
    series = _series(records)
    head = f'<section id="{anchor}"><h2>{html.escape(title)}</h2>'
    if not series:
        return head + '<p class="note">No numeric metrics logged.</p></section>'
    note = f"{len(records)} lines; x axis: step"
    if event_steps:
        note += "; dashed red lines: events (e.g. rollbacks)"
    if any(len(s[0]) > 60 for s in series.values()):
        note += "; faint line: raw values, solid line: moving average"
    figures = []
    for panel_title, keys in _panels(series):
        png = _panel_png(panel_title, keys, series, event_steps)
        alt = html.escape(", ".join(keys), quote=True)
        figures.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{png}"></figure>')
    return (
        f'{head}<p class="note">{html.escape(note)}.</p><div class="grid">{"".join(figures)}</div></section>'
    )


def _plots_section(data: _RunData) -> str:
    head = '<section id="figures"><h2>Latest figures</h2>'
    if not data.plots:
        return head + '<p class="note">No PNG figures in plots/.</p></section>'
    figures = []
    for kind, step, path in data.plots:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            figures.append(f'<p class="note">{html.escape(f"{path.name}: {exc}")}</p>')
            continue
        if not raw.startswith(_PNG_MAGIC):
            figures.append(f'<p class="note">{html.escape(path.name)}: not a PNG file, left out.</p>')
            continue
        png = base64.b64encode(raw).decode("ascii")
        caption = f"{kind} — step {step}" if step is not None else kind
        name = html.escape(path.name, quote=True)
        figures.append(
            f'<figure><img alt="{name}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)} <span>({name})</span></figcaption></figure>"
        )
    return f'{head}<div class="figs">{"".join(figures)}</div></section>'


def _events_section(data: _RunData) -> str:
    head = '<section id="events"><h2>Events</h2>'
    if not data.events:
        return head + '<p class="note">No events.</p></section>'
    rows = []
    for ev in data.events:
        time = _number(ev.get("time"))
        rows.append(
            f'<tr><td class="num">{_esc(ev.get("step", ""))}</td>'
            f'<td class="num">{html.escape(f"{time:.1f} s" if time is not None else "")}</td>'
            f"<td><b>{_esc(ev.get('event', ''))}</b></td><td>{_esc(ev.get('message', ''))}</td></tr>"
        )
    return (
        f"{head}<table><thead><tr><th>step</th><th>time</th><th>event</th><th>message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _config_section(data: _RunData) -> str:
    head = '<section id="config"><h2>config.toml</h2>'
    if data.config_text is None:
        return head + '<p class="note">No config.toml in the run directory.</p></section>'
    return f"{head}<pre>{html.escape(data.config_text)}</pre></section>"


def _render(data: _RunData) -> str:
    event_steps = sorted({s for s in (_number(e.get("step")) for e in data.events) if s is not None})
    generated = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    body = "".join(
        [
            _header(data),
            "<main>",
            _warnings(data),
            _final_section(data),
            _curves_section("Training curves", "train", data.train, event_steps),
            _curves_section("Evaluation curves", "eval", data.evals, event_steps),
            _plots_section(data),
            _events_section(data),
            _config_section(data),
            "</main>",
            f"<footer>Report generated {html.escape(generated)} by nrf.training.report.</footer>",
        ]
    )
    title = html.escape(f"{_run_name(data)} — nrf run report")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head>\n"
        f"<body>{body}</body></html>\n"
    )


def write_report(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write a self-contained HTML report of the training run in ``run_dir``.

    Args:
        run_dir: a run directory written by the trainer (``metrics.jsonl``,
            ``summary.json``, ``config.toml``, ``plots/``; any may be missing).
        out: where to write the page; default ``run_dir/report.html``.

    Returns:
        The path of the written page.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist, is not a directory, or holds
            neither ``metrics.jsonl`` nor ``summary.json``.
    """
    root = Path(run_dir)
    data = _load(root)
    target = Path(out) if out is not None else RunDir(root).report
    write_text_atomic(target, _render(data))
    return target
