"""The tutorial notebook runs from start to end (reduced sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pythia8mc")
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"


@pytest.mark.slow
def test_tutorial_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPAE_NB_EVENTS", "300")
    monkeypatch.setenv("HEPAE_NB_EPOCHS", "3")
    monkeypatch.setenv("HEPAE_NB_WORKDIR", str(tmp_path / "work"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert (tmp_path / "work" / "report.md").exists()
    assert (tmp_path / "work" / "plots" / "residuals.png").exists()
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "identical: True" in text
