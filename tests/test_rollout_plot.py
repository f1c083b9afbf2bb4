"""The rollout strip plot: labelled axes, tick labels that do not overlap."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from nrf.cli.rollout_cmd import _strip_figure, _strip_plot


def _overlaps(boxes: list) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


@pytest.mark.parametrize("dims", [2, 9])
def test_strip_plot_axes_are_labelled_and_ticks_do_not_overlap(dims: int) -> None:
    rng = np.random.default_rng(0)
    true = np.cumsum(rng.normal(size=(4, 60, dims)), axis=1) * 0.37 + 1000.0  # long tick labels
    pred = true + rng.normal(scale=0.5, size=true.shape)
    fig = _strip_figure(pred, true)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        assert ax.get_ylabel()
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [
                t.get_window_extent(renderer)
                for t in axis.get_ticklabels()
                if t.get_visible() and t.get_text()
            ]
            assert not _overlaps(boxes), (dims, [t.get_text() for t in axis.get_ticklabels()])
    assert fig.axes[-1].get_xlabel()
    assert _strip_plot(pred, true)[:8] == b"\x89PNG\r\n\x1a\n"
