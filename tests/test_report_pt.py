"""The report's sigma68 per pT bin, from the processor's residual-vs-pt histogram."""

from __future__ import annotations

import numpy as np
import pytest

from hepae_coffea.model.export import load_model
from hepae_coffea.plots.report import sigma68_vs_pt, write_report
from hepae_coffea.processing.evaluate import run_model
from hepae_coffea.processing.metrics import residuals, sigma68
from hepae_coffea.processing.run import run

from .conftest import make_jets, write_nanoaod
from .domain_rule import in_domain

VARS = ("pt", "eta", "phi", "mass")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    counts, jets = make_jets(3000, seed=31)
    jets["pt"] = jets["pt"] * 3  # spread over several octaves
    path = tmp_path_factory.mktemp("rpt") / "j.root"
    write_nanoaod(path, counts, jets)
    x = np.stack([jets[v] for v in VARS], axis=1).astype(np.float32)
    return path, x


def test_sigma68_per_pt_octave_matches_numpy(sample, tmp_path):
    path, x = sample
    out = run([str(path)], chunksize=100_000).output
    dataset = next(k for k in out if not str(k).startswith("_"))
    rows = sigma68_vs_pt(out[dataset])
    assert rows
    # the same jets through the model, residuals by hand
    _, rec, _ = run_model(load_model(), x)
    res = residuals(x.astype(np.float64), rec.astype(np.float64), VARS)
    # jets outside the model's domain are not decoded, so not in the histogram
    inside = in_domain(x)
    assert out[dataset]["counters"]["jets_in_domain"] == int(inside.sum())
    x, res = x[inside], res[inside]
    total = 0
    for r in rows:
        sel = (x[:, 0] >= r["lo"]) & (x[:, 0] < r["hi"])
        assert r["jets"] == int(sel.sum())
        total += r["jets"]
        if sel.sum() < 200:
            continue
        for j, v in enumerate(VARS):
            expected = sigma68(res[sel, j])
            # the histogram's coarse bins are a factor sqrt(2) wide
            assert expected / 1.5 <= r[v] <= expected * 1.5, (r["lo"], v, r[v], expected)
    assert total == len(x)
    report = write_report(out, tmp_path).read_text()
    assert "sigma68 per bin of the original jet pT" in report
    first = rows[0]
    assert f"| {first['lo']:.0f}-{first['hi']:.0f} | {first['jets']} |" in report
