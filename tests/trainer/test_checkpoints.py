"""Checkpoints on disk: ``latest`` names only complete checkpoints, older ones are pruned, and the
checkpoint to resume from is found under a folder or as the folder itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.trainer.checkpoints import (
    CLIENT_STATE,
    find_checkpoint,
    latest_checkpoint,
    read_client_state,
    save_checkpoint,
)


class FolderEngine:
    """Stands in for DeepSpeed's engine at its checkpoint boundary: writes the tag's folder."""

    def __init__(self) -> None:
        self.saved: list[tuple[str, str, bool]] = []

    def save_checkpoint(self, root: str, *, tag: str, save_latest: bool) -> None:
        (Path(root) / tag).mkdir(parents=True)
        (Path(root) / tag / "model_states.pt").write_text("weights")
        self.saved.append((root, tag, save_latest))


def test_save_writes_client_state_moves_latest_and_prunes_older(tmp_path: Path) -> None:
    engine = FolderEngine()
    root = tmp_path / "checkpoints"
    root.mkdir()
    assert latest_checkpoint(root) is None
    first = save_checkpoint(engine, root, "intermediate-000005", {"step": 5}, write_client=True)
    assert first == root / "intermediate-000005" and latest_checkpoint(root) == first
    second = save_checkpoint(engine, root, "target-000010", {"step": 10, "losses": [1.5]}, write_client=True)
    assert latest_checkpoint(root) == second and not first.exists()  # pruned
    assert sorted(p.name for p in root.iterdir()) == ["latest", "target-000010"]
    assert read_client_state(second) == {"step": 10, "losses": [1.5]}
    assert engine.saved[-1] == (str(root), "target-000010", False)  # DeepSpeed's own pointer unused


def test_a_rank_that_does_not_write_the_client_state_leaves_latest_alone(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    path = save_checkpoint(FolderEngine(), root, "target-000003", {"step": 3}, write_client=False)
    assert path.is_dir() and not (path / CLIENT_STATE).exists() and latest_checkpoint(root) is None


def test_latest_naming_a_missing_folder_is_no_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "latest").write_text("target-000099\n")
    assert latest_checkpoint(tmp_path) is None


def test_find_checkpoint_under_a_folder_or_the_folder_itself(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    root.mkdir()
    tagged = save_checkpoint(FolderEngine(), root, "target-000004", {"step": 4}, write_client=True)
    assert find_checkpoint(root) == tagged
    assert find_checkpoint(str(tagged)) == tagged  # a checkpoint folder handed over as it is (Tune)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        find_checkpoint(tmp_path / "empty")
