"""Opening ROOT files: one error naming the file for a missing or unreadable one."""

from __future__ import annotations

import numpy as np
import pytest
import uproot

from hepae_coffea.errors import InputFileError
from hepae_coffea.io.rootfile import open_root, tree_names


def test_trees_of_a_written_file(tmp_path):
    path = tmp_path / "t.root"
    with uproot.recreate(path) as f:
        f["Events"] = {"x": np.arange(3.0)}
        f["Runs"] = {"run": np.array([1], dtype=np.uint32)}
        f["note"] = "not a tree"
    with open_root(str(path)) as f:
        assert tree_names(f) == ["Events", "Runs"]
        assert f["Events"]["x"].array(library="np").tolist() == [0.0, 1.0, 2.0]


def test_missing_file_is_named(tmp_path):
    path = str(tmp_path / "nope.root")
    with pytest.raises(InputFileError, match=r"nope\.root: file not found"):
        open_root(path)


@pytest.mark.parametrize("content", [b"", b"hello, not ROOT\n" * 10])
def test_unreadable_file_is_named(tmp_path, content):
    path = tmp_path / "bad.root"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=r"bad\.root: cannot be read as a ROOT file"):
        open_root(str(path))


def test_directory_is_refused(tmp_path):
    with pytest.raises(InputFileError, match=r"cannot be read as a ROOT file.*Is a directory"):
        open_root(str(tmp_path))
