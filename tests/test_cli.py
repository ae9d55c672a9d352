from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from hepae_coffea.cli import main
from hepae_coffea.model.export import default_model_path


def test_info_default_json(capsys):
    assert main(["info", "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["path"] == str(default_model_path())
    assert meta["variables"] == ["pt", "eta", "phi", "mass"]
    assert meta["latent_dim"] == 3
    assert meta["kind"] == "ae"


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "pt [GeV]" in out
    assert "latent_dim   3" in out


def test_info_wrong_file(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_text("hello")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "x.pt: not a hepae-coffea model" in err


def test_train_cli_with_config_and_overrides(train_sample, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\nhidden: [16, 16]\nlr: 0.01\n")
    out = tmp_path / "m.pt"
    rc = main(
        [
            "train",
            str(train_sample),
            "-o",
            str(out),
            "--config",
            str(cfg),
            "--epochs",
            "2",
            "--weight",
            "phi=2",
            "--transform",
            "eta=scale:3",
            "--no-preview",
            "-q",
        ]
    )
    assert rc == 0
    saved = (tmp_path / "m.config.yaml").read_text()
    assert "epochs: 2" in saved  # the command line wins over the config file
    assert "- 16" in saved
    assert "phi: 2.0" in saved
    assert "eta: scale:3" in saved
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["architecture"]["hidden"] == [16, 16]
    assert meta["loss_weights"]["phi"] == 2.0
    assert meta["normalisation"][1]["scale"] == 3.0


def test_train_cli_lr_find(train_sample, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", str(train_sample), "-o", str(out), "--lr-find", "-q"]) == 0
    assert "suggested learning rate" in capsys.readouterr().out
    assert (tmp_path / "m.lr_find.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "missing.root", "-o", "m.pt"], "missing.root: file not found"),
        (["train", "-o", "m.pt"], "no training data"),
        (
            ["train", "{sample}", "--variables", "pt,foo", "--latent-dim", "1", "-o", "m.pt"],
            "no branch for jet variable(s) ['foo']",
        ),
        (["train", "{sample}", "--kind", "gan", "-o", "m.pt"], "kind 'gan' not in"),
        (
            ["train", "{sample}", "--weight", "phi", "-o", "m.pt"],
            "--weight must look like NAME=VALUE",
        ),
    ],
)
def test_train_cli_errors(train_sample, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{sample}", str(train_sample)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_generate_without_extra_is_clear(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    assert (
        main(["generate", "--process", "qcd", "--events", "2", "-o", str(tmp_path / "x.root")]) == 2
    )
    assert "needs the 'generate' extra" in capsys.readouterr().err


_COUNT_MODEL_OPENS = """
import os, sys
model = os.path.realpath(sys.argv[1])
opens = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        if os.path.realpath(os.fsdecode(args[0])) == model:
            opens.append(args[1])
sys.addaudithook(hook)
from hepae_coffea.cli import main
code = main(["demo", "-o", sys.argv[2], "--model", sys.argv[1]])
print(f"MODEL_OPENS {len(opens)}")
sys.exit(code)
"""


def test_demo_writes_outputs_and_reads_the_model_once(tmp_path):
    """``hepae demo`` end to end; the model file is opened once (Python's audit hook sees
    every open of it, whichever part of the package or its libraries reads it)."""
    model = tmp_path / "model.pt"
    shutil.copyfile(default_model_path(), model)
    out = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-c", _COUNT_MODEL_OPENS, str(model), str(out)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sigma68" in r.stdout
    assert "MODEL_OPENS 1" in r.stdout, r.stdout[-500:]
    summary = json.loads((out / "summary.json").read_text())
    counters = summary["qcd_sample"]["counters"]
    assert counters["jets"] > 1000
    assert counters["jets_unphysical"] == 0
    assert summary["qcd_sample"]["residuals"]["pt"]["sigma68"] < 0.02
    assert (out / "plots" / "residuals.png").stat().st_size > 10_000
    assert "**Overall verdict: PASS**" in (out / "report.md").read_text()
    assert (out / "results.coffea").exists()
    assert (out / "results.root").exists()


def test_entry_point_and_processors_import_outside_repo(tmp_path):
    """The console script works and processors import as hepae_coffea.processors anywhere."""
    (tmp_path / "processors").mkdir()  # a user's own folder must not shadow ours
    code = "import hepae_coffea.processors as p, hepae_coffea; print(p.__name__)"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert r.stdout.strip() == "hepae_coffea.processors"
    r = subprocess.run(
        [sys.executable, "-m", "hepae_coffea.cli", "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert r.stdout.startswith("hepae-coffea ")


def test_console_script_ends_with_mains_output_and_exit_code(tmp_path, capsys):
    """The console script leaves without the interpreter's teardown: what `main` printed
    reaches a pipe in full (stdout is block-buffered there), and the exit code is main's."""
    assert main(["info"]) == 0
    want = capsys.readouterr().out
    assert want.count("\n") > 5
    cmd = [sys.executable, "-m", "hepae_coffea.cli"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    ok = subprocess.run([*cmd, "info"], capture_output=True, text=True, check=False, env=env)
    assert ok.returncode == 0
    assert ok.stdout == want
    missing = tmp_path / "missing.root"
    bad = subprocess.run(
        [*cmd, "run", str(missing), "-o", str(tmp_path / "out.coffea")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"hepae run: error: {missing}: file not found"


def test_dask_run_prints_no_distributed_logs_without_verbose(tmp_path):
    """`hepae run --executor dask` without -v prints none of distributed's log lines (its
    scheduler and nannies log at INFO once distributed is imported); a fresh interpreter,
    so that no earlier import decides the order."""
    sample = default_model_path().with_name("sample_qcd.root")
    out = tmp_path / "d.coffea"
    cmd = [sys.executable, "-m", "hepae_coffea.cli", "run", str(sample), "-o", str(out), "-q"]
    res = subprocess.run(
        [*cmd, "--executor", "dask", "--workers", "1"], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert out.exists()
    assert "distributed." not in res.stderr
