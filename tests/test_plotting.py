from __future__ import annotations

import json

import matplotlib as mpl
import numpy as np
import pytest

from hepae_coffea.cli import main
from hepae_coffea.model.export import load_model
from hepae_coffea.model.handle import open_model
from hepae_coffea.plots.report import report_table, threshold_for, write_report
from hepae_coffea.plots.results import (
    figure_distribution,
    figure_residual,
    figure_residual_vs_pt,
    figure_residuals_combined,
    plot_results,
)
from hepae_coffea.plots.scan import figure_latent_pairs, figure_latent_scan, figure_latents
from hepae_coffea.plots.scores import figure_roc, figure_scores, roc_from_hists
from hepae_coffea.plots.training import figure_loss_curves, figure_previews
from hepae_coffea.processing.hists import make_hists, sigma68_from_hist
from hepae_coffea.processing.run import run, run_info, save_output

from .conftest import make_jets, write_nanoaod

mpl.use("Agg")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("plots")
    files = {}
    for name, seed, scale in (("qcd", 20, 1.0), ("signal", 21, 6.0)):
        counts, jets = make_jets(300, seed=seed)
        jets["pt"] = jets["pt"] * scale  # the "signal" has harder, partly out-of-range jets
        files[name] = d / f"{name}.root"
        write_nanoaod(files[name], counts, jets)
    res = run({k: [str(v)] for k, v in files.items()}, chunksize=1000)
    path = d / "results.coffea"
    save_output(res.output, path, run_info(res, load_model().metadata))
    return res.output, path


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for ax in fig.axes for leg in [ax.get_legend()] if leg for t in leg.get_texts()
    ]


def test_residual_figure_content(results):
    out, _ = results
    fig = figure_residual(out, "pt")
    ax = fig.axes[0]
    assert "p_{T}^{rec}" in ax.get_xlabel()
    assert ax.get_ylabel() == "Jets / bin"
    texts = " ".join(_texts(fig))
    assert "ATLAS" in texts
    assert "Simulation" in texts
    for name in ("qcd", "signal"):
        s68 = sigma68_from_hist(out[name]["residual"][{"variable": "pt"}])
        assert f"{s68:.2e}" in texts
        assert name in texts
    assert "RMS" in texts
    assert "mean" in texts
    assert ax.get_yscale() == "log"


def test_absolute_residual_and_combined(results):
    out, _ = results
    fig = figure_residual(out, "phi", kind="absolute")
    assert "[rad]" in fig.axes[0].get_xlabel()
    assert "/" not in fig.axes[0].get_xlabel().split("[")[0]
    comb = figure_residuals_combined(out)
    assert len([a for a in comb.axes if a.get_visible()]) == 4


def test_distribution_with_ratio(results):
    out, _ = results
    fig = figure_distribution(out["qcd"], "mass", "qcd")
    top, ratio = fig.axes[:2]
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["original", "reconstructed"]
    assert ratio.get_ylabel() == "rec / orig"
    assert "[GeV]" in ratio.get_xlabel()
    assert top.get_xscale() == "log"


def test_residual_vs_pt_profile(results):
    out, _ = results
    fig = figure_residual_vs_pt(out["qcd"], "pt", "qcd")
    ax2d, prof = fig.axes[0], fig.axes[1]
    assert ax2d.get_yscale() == "symlog"
    h2 = out["qcd"]["residual_vs_pt"][{"variable": "pt"}]
    y = prof.get_lines()[0].get_ydata()
    i = int(np.nanargmax(h2.values().sum(axis=1)))
    assert y[i] == pytest.approx(sigma68_from_hist(h2[i, :]))


def test_scores_and_roc(results):
    out, _ = results
    fig = figure_scores(out, "score_event_max")
    ax = fig.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == 2
    roc = figure_roc(out, "qcd", "signal")
    labels = [t.get_text() for t in roc.axes[0].get_legend().get_texts()]
    assert any(lbl.startswith("jet score, AUC = ") for lbl in labels)
    _, _, auc = roc_from_hists(out["qcd"]["score_jet"], out["signal"]["score_jet"])
    assert f"AUC = {auc:.3f}" in next(lbl for lbl in labels if lbl.startswith("jet score"))
    assert auc > 0.6  # the harder jets are more anomalous
    with pytest.raises(KeyError, match="dataset 'nope' not in results"):
        figure_roc(out, "qcd", "nope")


def test_roc_limits():
    h = make_hists(load_model().metadata)
    a, b, c = h["score_jet"], h["score_jet"].copy(), h["score_jet"].copy()
    a.fill(score=np.full(100, 1e-6))
    b.fill(score=np.full(100, 1e-6))
    c.fill(score=np.full(100, 1e-2))
    assert roc_from_hists(a, b)[2] == pytest.approx(0.5)
    assert roc_from_hists(a, c)[2] == pytest.approx(1.0)
    # an empty sample: the diagonal and no AUC, not an error
    eb, es, auc = roc_from_hists(a, make_hists(load_model().metadata)["score_jet"])
    assert list(eb) == list(es) == [0.0, 1.0]
    assert np.isnan(auc)


def test_latent_figures(results):
    out, _ = results
    assert len(figure_latents(out).axes) == 3
    assert len(figure_latent_pairs(out["qcd"], "qcd").axes) >= 3  # 3 pairs (+ colorbars)


def test_latent_scan_decodes_the_grid(tmp_path):
    """With a model whose latents are (pt, eta, phi, mass) and whose decoder is a known
    formula, every grid point of the scan is known: panel i shows variable i's formula."""
    from .known_model import export_known_model

    path = export_known_model(tmp_path / "known.pt", pt_scale=2.0, eta_shift=0.5)
    model = load_model(path)
    n = 8
    lo, hi = model.metadata["latent_range"]
    xs = np.linspace(lo, hi, n)  # no histogram given: the model's latent range
    mid = 0.5 * (lo + hi)  # the other dimensions at the middle of the range
    # an already loaded model, a handle from open_model and a path decode the same grid
    for source, dims in ((model, (0, 1)), (open_model(path), (3, 1)), (path, (0, 1))):
        fig = figure_latent_scan(source, None, dims=dims, n=n)
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        panels = [np.asarray(ax.collections[0].get_array()).reshape(n, n) for ax in axes]
        gx, gy = np.meshgrid(xs, xs)  # rows: second dimension, columns: first
        z = np.full((4, n, n), mid)
        z[dims[0]], z[dims[1]] = gx, gy
        z = z.astype(np.float32).astype(np.float64)
        expect = [2.0 * z[0], z[1] + 0.5, np.angle(np.exp(1j * z[2])), z[3]]
        for i, (got, want) in enumerate(zip(panels, expect, strict=True)):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, err_msg=f"{dims} {i}")
        assert axes[0].get_xlim() == pytest.approx((lo, hi))


def test_training_figures(tmp_path):
    history = [{"epoch": i, "train_loss": 1.0 / i, "val_loss": 1.2 / i} for i in range(1, 6)]
    fig = figure_loss_curves(history)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [h["val_loss"] for h in history])
    import matplotlib.pyplot as plt

    paths = []
    for i in range(20):
        f, a = plt.subplots(figsize=(2, 1))
        a.plot([0, i])
        p = tmp_path / f"epoch_{i + 1:03d}.png"
        f.savefig(p)
        plt.close(f)
        paths.append(p)
    prev = figure_previews(paths, max_images=6)
    assert len(prev.axes) == 6
    assert prev.axes[-1].get_title(loc="left") == "epoch 020"


def test_plot_results_edge_cases(tmp_path, results):
    out, _ = results
    empty = {"empty": make_hists(load_model().metadata)}  # a dataset without jets
    made = plot_results({"qcd": out["qcd"], **empty}, tmp_path / "p", formats=("png",))
    assert all(p.exists() and p.stat().st_size > 5000 for files in made.values() for p in files)
    assert not [name for name in made if "empty" in name]  # no per-dataset figures
    many = {f"ds{i}": out["qcd"] for i in range(12)}  # more datasets than colours
    comb = figure_residuals_combined(many)
    assert len([a for a in comb.axes if a.get_visible()]) == 4
    fig = figure_scores(many)
    assert len(fig.axes[0].get_legend().get_texts()) == 12


def test_figure_groups_select_what_is_drawn(tmp_path, results):
    out, _ = results
    groups = {
        "residuals": {"residuals", "residual_pt", "residual_abs_eta", "residual_vs_pt_qcd_mass"},
        "distributions": {"distribution_qcd_pt", "distribution_qcd_mass"},
        "scores": {"score_jet", "score_event_max", "score_event_mean"},
        "latents": {"latents", "latent_pairs_qcd"},
    }
    for group in ("scores", "latents"):  # the cheap groups; distributions: the test below
        names = groups[group]
        made = plot_results(
            {"qcd": out["qcd"]}, tmp_path / group, formats=("png",), figures=[group]
        )
        assert names <= set(made), group
        others = set().union(*(n for g, n in groups.items() if g != group))
        assert not others & set(made), group
        assert sorted(p.name for p in (tmp_path / group).iterdir()) == sorted(
            p.name for files in made.values() for p in files
        )
    with pytest.raises(ValueError, match=r"unknown figure group.*resdiuals"):
        plot_results(out, tmp_path / "x", figures=["resdiuals"])


def test_dataset_names_become_single_path_components(tmp_path, results):
    out, _ = results
    made = plot_results(
        {"a/b c": out["qcd"], "..": out["qcd"]},
        tmp_path / "p",
        formats=("png",),
        figures=["distributions"],
    )
    names = {p.name for files in made.values() for p in files}
    assert all(n.startswith("distribution_") for n in names)  # the one group asked for
    # "/" and " " replaced by "_"; a name of dots gets a prefix instead of meaning a folder
    assert "distribution_a_b_c_pt.png" in names
    assert "distribution_dataset___pt.png" in names
    assert all(p.parent == tmp_path / "p" for files in made.values() for p in files)


def test_report_table_and_page(results, tmp_path):
    out, _ = results
    table = report_table(out, {"pt": 1e-9})
    row = table["qcd"]["variables"]["pt"]
    assert row["verdict"] == "FAIL"  # nothing reaches a 1e-9 threshold
    assert table["qcd"]["variables"]["mass"]["threshold"] == 0.02
    assert threshold_for("nConstituents") == 0.05
    assert set(row) >= {"mean", "rms", "sigma68", "q99_abs", "frac_beyond_1pct", "frac_beyond_5pct"}
    assert 0 <= row["frac_beyond_5pct"] <= row["frac_beyond_1pct"] <= 1
    page = write_report(
        out,
        tmp_path,
        info={
            "seconds": 2.0,
            "jets": 100,
            "jets_per_second": 50.0,
            "executor": "iterative",
            "schema": "nanoaod",
        },
    )
    text = page.read_text()
    assert "**Overall verdict:" in text
    assert "| pt | relative |" in text
    assert "50 jets/s" in text


def test_cli_plot_and_report(results, tmp_path, capsys):
    _, path = results
    run_dir = tmp_path / "m_run"
    (run_dir / "previews").mkdir(parents=True)
    (run_dir / "history.json").write_text(
        json.dumps(
            [
                {"epoch": 1, "train_loss": 1.0, "val_loss": 1.1},
                {"epoch": 2, "train_loss": 0.5, "val_loss": 0.6},
            ]
        )
    )
    out = tmp_path / "figs"
    assert (
        main(
            [
                "plot",
                str(path),
                "-o",
                str(out),
                "--background",
                "qcd",
                "--signal",
                "signal",
                "--training",
                str(run_dir),
                "--formats",
                "png",  # PDF output is checked with the report below
                "--figures",
                "scores,latents",  # the ROC curve and the latent scan; the rest: below
                "--report",
                "--threshold",
                "pt=0.5",
                "--label",
                "Simulation Preliminary",
            ]
        )
        == 0
    )
    assert (out / "roc.png").exists()
    assert (out / "training_loss.png").exists()
    assert (out / "latent_scan.png").exists()  # the model recorded in the results
    report = (out / "report.md").read_text()
    assert "![roc](roc.png)" in report
    assert not list(out.glob("residual*"))
    assert not list(out.glob("distribution*"))
    argv = ["report", str(path), "-o", str(tmp_path / "r"), "--formats", "pdf"]
    assert main([*argv, "--figures", "scores"]) == 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert "| pt | relative |" in report  # the residual table, whatever the figures
    assert (tmp_path / "r" / "roc.pdf").exists() is False  # no ROC without --signal
    assert (tmp_path / "r" / "score_jet.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "nope.coffea"], "nope.coffea: results file not found"),
        (["plot", "{res}", "--background", "qcd"], "--background and --signal go together"),
        (["plot", "{res}", "--background", "qcd", "--signal", "zz"], "dataset 'zz' not in"),
        (["plot"], "give a results file and/or --training"),
        (["plot", "--training", "nowhere"], "no training history"),
        (["plot", "{res}", "--figures", "scores,rocs"], "--figures: unknown group(s) rocs"),
    ],
)
def test_cli_plot_errors(results, tmp_path, monkeypatch, capsys, argv, message):
    _, path = results
    monkeypatch.chdir(tmp_path)
    assert main([a.replace("{res}", str(path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_count_residuals_drawn_per_integer_and_width_below_resolution():
    from hepae_coffea.plots.report import _fmt_width
    from hepae_coffea.processing.hists import make_hists
    from hepae_coffea.processing.metrics import is_count

    assert is_count("nCharged")
    assert is_count("Jet_nConstituents")
    assert not is_count("n")
    assert not is_count("neHEF")
    d = make_hists({"variables": [{"name": "pt"}, {"name": "nCharged"}], "latent_dim": 2})
    diffs = np.array([0] * 90 + [1] * 6 + [-1] * 3 + [2], dtype=float)
    d["residual_abs"].fill(variable="nCharged", residual=diffs)
    d["residual_moments"].fill(variable="nCharged", kind="absolute", sample=diffs)
    fig = figure_residual({"qcd": d}, "nCharged", kind="absolute")
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == list(range(-3, 4))
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "<= 6e-08" in texts  # sigma68 of mostly-zero integer residuals: below resolution
    # the step histogram: one bin per integer with the exact counts
    (stairs,) = ax.patches
    data = stairs.get_data()
    np.testing.assert_array_equal(data.edges, np.arange(-3.5, 4.0))
    np.testing.assert_allclose(data.values, [0, 0, 3, 90, 6, 1, 0], atol=1e-9)
    assert _fmt_width(1e-9) == "<= 6e-08"
    assert _fmt_width(0.0123) == "0.0123"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_cli_figure_groups_are_the_library_groups():
    from hepae_coffea.cli.plot import _GROUPS
    from hepae_coffea.plots.results import FIGURE_GROUPS

    assert _GROUPS == FIGURE_GROUPS
