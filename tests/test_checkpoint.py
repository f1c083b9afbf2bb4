"""Checkpoints: atomic folders, integrity checks, optimizer state round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nrf.training import checkpoint as ckpt


def _tensors() -> dict[str, torch.Tensor]:
    return {"model/w": torch.arange(6.0).view(2, 3), "rng/x": torch.Generator().manual_seed(3).get_state()}


def test_round_trip_and_listing(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    for step in (5, 10, 15):
        ckpt.save_checkpoint(ckpt.step_dir(root, step), _tensors(), {"step": step})
    assert [p.name for p in ckpt.list_checkpoints(root)] == [
        "step-00000005",
        "step-00000010",
        "step-00000015",
    ]
    tensors, state = ckpt.load_checkpoint(ckpt.step_dir(root, 10))
    assert state["step"] == 10
    assert torch.equal(tensors["model/w"], _tensors()["model/w"])
    ckpt.prune(root, 2)
    assert [p.name for p in ckpt.list_checkpoints(root)] == ["step-00000010", "step-00000015"]
    assert not list(root.glob(".*"))  # no temporary folders left behind


def test_truncated_or_tampered_checkpoints_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    good = ckpt.save_checkpoint(ckpt.step_dir(root, 1), _tensors(), {"step": 1})
    bad = ckpt.save_checkpoint(ckpt.step_dir(root, 2), _tensors(), {"step": 2})
    data = (bad / ckpt.TENSORS).read_bytes()
    (bad / ckpt.TENSORS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="truncated or altered"):
        ckpt.load_checkpoint(bad)
    # The newest *valid* checkpoint is used instead.
    with pytest.warns(UserWarning, match=r"skipping checkpoint .*step-00000002: .*truncated or altered"):
        found = ckpt.latest_valid(root)
    assert found is not None
    assert found[0] == good
    tampered = bytearray((good / ckpt.TENSORS).read_bytes())
    tampered[-1] ^= 0xFF
    (good / ckpt.TENSORS).write_bytes(bytes(tampered))
    with pytest.raises(ckpt.CheckpointError, match="sha256"):
        ckpt.load_checkpoint(good)
    state = json.loads((bad / ckpt.STATE).read_text())
    state["format"] = "something-else"
    (bad / ckpt.STATE).write_text(json.dumps(state))
    with pytest.raises(ckpt.CheckpointError, match="unknown checkpoint format"):
        ckpt.load_checkpoint(bad)
    with pytest.raises(ckpt.CheckpointError, match="not a checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_overwrite_is_atomic_replacement(tmp_path: Path) -> None:
    path = tmp_path / "best"
    ckpt.save_checkpoint(path, _tensors(), {"step": 1})
    ckpt.save_checkpoint(path, {"model/w": torch.zeros(1)}, {"step": 2})
    tensors, state = ckpt.load_checkpoint(path)
    assert state["step"] == 2
    assert set(tensors) == {"model/w"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_optimizer_state_round_trip() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    tensors, meta = ckpt.optimizer_to_flat("optim/energy", opt)
    json.dumps(meta)  # JSON-able
    other = torch.optim.Adam(net.parameters(), lr=0.5)
    ckpt.optimizer_from_flat("optim/energy", other, tensors, meta)
    a, b = opt.state_dict(), other.state_dict()
    assert b["param_groups"][0]["lr"] == pytest.approx(0.01)
    assert tuple(b["param_groups"][0]["betas"]) == (0.5, 0.9)
    for idx in a["state"]:
        for key, value in a["state"][idx].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][idx][key]))
