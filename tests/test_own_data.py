"""``nrf train`` on a user's own CSV / NPY file: the network's input shape comes from the
file's rows (no ``energy_args.event_shape`` needed), and the run records it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nrf.cli.main import main
from nrf.training.config import load_config
from nrf.training.run import load_run


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
def test_train_on_own_rows_without_an_event_shape(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    path = tmp_path / f"mine{suffix}"
    if suffix == ".csv":
        np.savetxt(path, rows, delimiter=",", header="a,b,c,d,e", comments="")
    else:
        np.save(path, rows)
    config = tmp_path / "mine.toml"
    config.write_text(
        f'[run]\nname = "mine"\nout_dir = "{tmp_path / "runs"}"\nthreads = 1\n\n'
        f'[data]\nname = "{suffix[1:]}"\npath = "{path}"\n\n'
        '[model]\nenergy = "gmm"\n\n[objective]\nname = "dsm"\nargs = { sigmas = [0.3] }\n\n'
        "[train]\nsteps = 20\neval_every = 0\nprogress = false\n"
    )
    assert main(["train", str(config)]) == 0
    run = tmp_path / "runs" / "mine"
    assert load_config(run / "config.toml", run_directory=True).model.energy_args["event_shape"] == [5]
    assert load_run(run).energy.event_shape == (5,)
    capsys.readouterr()
    assert main(["score", str(run), "--input", str(path)]) == 0
    assert len(capsys.readouterr().out.split()) == 300
