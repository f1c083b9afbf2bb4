"""Every Python example of the README runs as printed, each in a fresh interpreter in an
empty folder (with the repository's ``configs/`` beside it, as in a checkout) and an
empty data folder: no name left undefined, no file needed that the example does not make."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
HEADING = re.compile(r"^## (.+)$", re.M)


def _examples() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for match in BLOCK.finditer(text):
        headings = HEADING.findall(text[: match.start()])
        out.append((headings[-1] if headings else "top", match.group(1)))
    return out


EXAMPLES = _examples()


def test_the_readme_has_its_examples() -> None:
    assert len(EXAMPLES) >= 6


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "code"), EXAMPLES, ids=[f"{i}-{s[:30]}" for i, (s, _) in enumerate(EXAMPLES)]
)
def test_readme_example_runs_as_printed(tmp_path: Path, section: str, code: str) -> None:
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "PYTHONWARNINGS": "error::SyntaxWarning"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"README example in {section!r} failed:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), "every example prints what it computed"
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "configs")
    assert set(written) <= {"runs"}, f"the example wrote outside runs/: {written}"
