"""The promises of the README's "Guarantees" section: outputs never replace inputs,
nothing is unpickled or executed from data files unless trusted, options and filesets are
checked, compressed chunk files never collide or leave their folder."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import hist
import numpy as np
import pandas as pd
import pytest
import torch

from hepae_coffea.cli import main
from hepae_coffea.errors import InputFileError, ModelFileError
from hepae_coffea.io.guards import (
    OutputConflictError,
    UntrustedPickleError,
    check_outputs,
    safe_name,
    trusted_pickles,
)
from hepae_coffea.io.jets import read_jets
from hepae_coffea.io.results import decode, encode, read_results, write_results
from hepae_coffea.processing.run import build_fileset, load_output, run
from hepae_coffea.processors.compression import compressed_chunk_name
from hepae_coffea.training.loop import load_checkpoint, save_checkpoint

from .conftest import make_jets, write_nanoaod


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    counts, jets = make_jets(300, seed=3)
    path = d / "data.root"
    write_nanoaod(path, counts, jets)
    return path


class _Payload:
    """Unpickling this writes a marker file: proof that code from a data file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- outputs never replace inputs -------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("data.coffea", "output {d}/data.root is the input {d}/data.root"),  # derived X.root
        ("data.root", "is the input"),
        ("res.root", "outputs {d}/res.root and {d}/res.root are the same file"),
        ("link/data.coffea", "is the input"),  # through a symlinked folder
        ("data.hists", "is the input"),  # data.hists.json is a fileset input below
    ],
)
def test_run_refuses_output_that_is_an_input(sample, tmp_path, capsys, output, message):
    data = _copy(sample, tmp_path / "data.root")
    (tmp_path / "link").symlink_to(tmp_path)
    fileset = tmp_path / "data.hists.json"
    fileset.write_text(json.dumps({"ds": [str(data)]}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    argv = ["run", str(data), "-o", str(tmp_path / output), "-q"]
    if output == "data.hists":
        argv = ["run", str(fileset), "-o", str(tmp_path / "data.coffea"), "-q"]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert message.format(d=tmp_path) in line
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # nothing written, nothing replaced


def test_hard_link_and_symlink_are_the_input(sample, tmp_path):
    data = _copy(sample, tmp_path / "data.root")
    os.link(data, tmp_path / "hard.root")
    (tmp_path / "soft.root").symlink_to(data)
    for name in ("hard.root", "soft.root"):
        with pytest.raises(OutputConflictError, match="is the input"):
            check_outputs([data], [tmp_path / name])
    check_outputs([data], [tmp_path / "other.root"])  # a new file is fine
    with pytest.raises(OutputConflictError, match="lies inside the output folder"):
        check_outputs([data], [], output_dirs=[tmp_path])
    with pytest.raises(OutputConflictError, match="is the input"):
        check_outputs([tmp_path], [], output_dirs=[tmp_path / "link" / ".."])


@pytest.mark.parametrize(
    "argv",
    [
        ["compress", "{data}", "-o", "{data}"],
        ["compress", "{data}", "-o", "{d}/link/data.root"],
        ["decompress", "{data}", "-o", "{data}"],
        ["train", "{data}", "-o", "{data}"],
        ["train", "{data}", "-o", "{d}/m.pt", "--config", "{d}/m.config.yaml"],
        ["plot", "{data}", "-o", "{data}"],
        ["run", "{data}", "--compress-dir", "{d}", "-o", "{d}/out/r.coffea"],
    ],
)
def test_every_command_refuses_its_input_as_output(sample, tmp_path, capsys, argv):
    data = _copy(sample, tmp_path / "data.root")
    (tmp_path / "m.config.yaml").write_text("epochs: 1\n")
    (tmp_path / "link").symlink_to(tmp_path)
    before = data.read_bytes()
    argv = [a.format(data=data, d=tmp_path) for a in argv]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "input" in line
    assert data.read_bytes() == before
    assert not list(tmp_path.glob("*.tmp"))


# --- nothing unpickled or executed from data --------------------------------------------


def _filled_hists() -> dict:
    rng = np.random.default_rng(5)
    mean = hist.Hist(
        hist.axis.StrCategory(["pt", "eta"], name="variable"),
        hist.axis.StrCategory(["relative", "absolute"], name="kind"),
        storage=hist.storage.Mean(),
    )
    mean.fill(variable="pt", kind="relative", sample=[1.0, 2.0, 4.0])
    reg = hist.Hist(hist.axis.Regular(7, -1.5, 2.0, name="x", label="x [GeV]"))
    reg.fill(rng.normal(size=500))
    var = hist.Hist(
        hist.axis.Variable([0.0, 0.1, 1.0, 10.0], name="v"),
        hist.axis.IntCategory([0, 1, 2], name="dim"),
        hist.axis.Integer(0, 3, name="n"),
    )
    var.fill(v=rng.exponential(2, 300), dim=rng.integers(0, 3, 300), n=rng.integers(-1, 5, 300))
    return {"ds": {"m": mean, "r": reg, "d": {"v": var}, "counters": {"events": 7}}}


def test_safe_results_round_trip_exactly(tmp_path):
    data = _filled_hists()
    path = tmp_path / "r.hists.json"
    write_results(data, path)
    back = read_results(path)
    m = back["ds"]["m"].view(flow=True)
    # Mean storage: count, mean and sum of squared deviations of (1, 2, 4), by hand
    assert m["count"][0, 0] == 3
    assert m["value"][0, 0] == pytest.approx(7 / 3, rel=1e-15)
    assert m["_sum_of_deltas_squared"][0, 0] == pytest.approx(
        (1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2, rel=1e-12
    )
    for key in ("m", "r"):
        assert back["ds"][key] == data["ds"][key]
        assert back["ds"][key].axes == data["ds"][key].axes
    assert back["ds"]["d"]["v"] == data["ds"]["d"]["v"]
    assert back["ds"]["d"]["v"].values(flow=True).sum() == 300  # flow bins kept
    assert back["ds"]["counters"] == {"events": 7}
    assert back["ds"]["r"].axes[0].label == "x [GeV]"
    assert decode(encode({"a": [1, "x", None]})) == {"a": [1, "x", None]}


def test_safe_results_refuse_foreign_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(InputFileError, match="not a hepae-coffea results file"):
        read_results(path)
    path.write_text("{broken")
    with pytest.raises(InputFileError, match=r"x\.json: not a hepae-coffea results file"):
        read_results(path)


@pytest.fixture(scope="module")
def run_outputs(sample, tmp_path_factory):
    d = tmp_path_factory.mktemp("runout")
    out = d / "res.coffea"
    assert main(["run", str(sample), "-o", str(out), "--chunksize", "100", "-q"]) == 0
    return out


def test_run_writes_safe_results_equal_to_the_pickle(run_outputs):
    from coffea.util import load

    pickled = load(run_outputs)
    safe = read_results(run_outputs.with_name("res.hists.json"))
    assert set(safe) == set(pickled)
    for name, d in pickled.items():
        if name.startswith("_"):
            assert safe[name] == d
            continue
        for key, h in d.items():
            if isinstance(h, hist.Hist):
                assert safe[name][key] == h, key
            elif key == "distribution":
                for v in h:
                    assert safe[name][key][v] == h[v]
            else:
                assert safe[name][key] == dict(h)
    moments = safe["data"]["residual_moments"].view()
    np.testing.assert_array_equal(moments, pickled["data"]["residual_moments"].view())


def test_plot_reads_results_without_unpickling(run_outputs, tmp_path, capsys):
    # replace the pickle with one that runs code: plotting must not load it
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "res.coffea"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    safe = run_outputs.with_name("res.hists.json")
    (tmp_path / "res.hists.json").write_bytes(safe.read_bytes())
    argv = ["plot", str(evil), "-o", str(tmp_path / "plots"), "--formats", "png"]
    assert main([*argv, "--figures", "scores"]) == 0
    assert not marker.exists()
    assert list((tmp_path / "plots").glob("*.png"))
    # without its safe sibling, a .coffea pickle needs --trust-pickle
    (tmp_path / "res.hists.json").unlink()
    capsys.readouterr()
    assert main(["plot", str(evil), "-o", str(tmp_path / "p2")]) == 2
    assert "--trust-pickle" in _error_line(capsys)
    assert not marker.exists()
    data, _ = load_output(run_outputs, trust_pickle=True)  # the real pickle, trusted
    assert "data" in data


def test_checkpoints_hold_plain_data_only(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "checkpoint.pt"
    torch.save({"config": {}, "model": _Payload(marker)}, path)
    with pytest.raises(ModelFileError, match="damaged or unsafe checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
    state = {k: 0 for k in ("config", "optimizer", "scheduler", "history", "best_state")}
    state.update(
        model={"w": torch.arange(3.0)},
        torch_rng=torch.get_rng_state(),
        best_val=1.5,
        epoch=2,
        seconds=3.0,
    )
    save_checkpoint(state, path)
    back = load_checkpoint(path)
    assert torch.equal(back["model"]["w"], torch.arange(3.0))
    assert back["epoch"] == 2
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(ModelFileError, match=r"checkpoint\.pt: damaged"):
        load_checkpoint(path)


def test_resume_from_corrupt_checkpoint_is_one_line(sample, tmp_path, capsys):
    model = tmp_path / "m.pt"
    run_dir = tmp_path / "m_run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    argv = ["train", str(sample), "-o", str(model), "--epochs", "1", "--resume", "-q"]
    assert main([*argv, "--no-preview"]) == 2
    line = _error_line(capsys)
    assert "checkpoint.pt: damaged or unsafe checkpoint" in line


def test_pickle_inputs_need_trust(tmp_path, capsys):
    _, jets = make_jets(40)
    df = pd.DataFrame({"pt": jets["pt"], "eta": jets["eta"], "phi": jets["phi"], "m": jets["mass"]})
    path = tmp_path / "jets.pkl"
    df.to_pickle(path)
    with pytest.raises(UntrustedPickleError, match=r"jets\.pkl: .*--trust-pickle"):
        read_jets(path)
    with trusted_pickles():
        assert len(read_jets(path).values) == len(jets["pt"])
    marker = tmp_path / "ran.txt"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    assert main(["train", str(evil), "-o", str(tmp_path / "m.pt"), "-q", "--no-preview"]) == 2
    assert "--trust-pickle" in _error_line(capsys)
    assert not marker.exists()


def test_info_says_torchscript_is_code(capsys):
    assert main(["info"]) == 0
    assert "TorchScript: a program, run when loaded" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["executes_code"] is True


# --- options and filesets checked ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "{data}", "--chunksize", "-5"], "argument --chunksize: -5 is out of range"),
        (["run", "{data}", "--workers", "-1"], "argument --workers: -1 is out of range"),
        (["run", "{data}", "--maxchunks", "0"], "argument --maxchunks: 0 is out of range"),
        (["run", "{data}", "--pt-min", "nan"], "argument --pt-min: 'nan' is not a finite"),
        (["run", "{data}", "--compress-dir", "c", "--latent-bits", "24"], "between 0 and 23"),
        (["train", "{data}", "--epochs", "0"], "argument --epochs: 0 is out of range"),
        (["train", "{data}", "--lr", "-1"], "argument --lr: -1 is out of range"),
        (["generate", "--process", "qcd", "--events", "-3", "-o", "x.root"], "out of range"),
    ],
)
def test_option_ranges(sample, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([a.format(data=sample) for a in argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "{data}", "--latent-dim", "5"], "--latent-dim 5 must be smaller than"),
        (["train", "{data}", "--latent-dim", "4"], "number of inputs (4: pt, eta, phi, mass)"),
        (["train", "{data}", "--hidden", "0"], "--hidden: layer sizes must be >= 1"),
        (["train", "{data}", "--hidden", "8,x"], "not a comma-separated list of integers"),
        (["run", "{data}", "--latent-bits", "8"], "--latent-bits needs --compress-dir"),
    ],
)
def test_option_combinations(sample, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main([a.format(data=sample) for a in argv]) == 2
    assert message in _error_line(capsys)
    assert not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("fs.json", '{"ds": 5}', "fs.json: dataset 'ds': expected a file path"),
        ("fs.json", '{"ds": [1]}', "fs.json: dataset 'ds': file entries must be paths"),
        ("fs.json", '{"ds": {"files": {"a.root": 3}}}', "fs.json: dataset 'ds': files must map"),
        ("fs.json", '{"ds": []}', "fs.json: dataset 'ds' has no files"),
        ("fs.json", '{"ds": [}', "fs.json: not valid JSON at line 1, column 9"),
        ("fs.json", "[1, 2]", "fs.json: a fileset must map dataset names to files, got list"),
        ("fs.yaml", "ds: [a.root\nother: 1\n", "fs.yaml: not valid YAML at line"),
        ("fs.yaml", "ds:\n  files: 7\n", "fs.yaml: dataset 'ds': expected a file path"),
    ],
)
def test_fileset_errors_name_file_and_entry(tmp_path, capsys, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputFileError) as exc:
        build_fileset([path])
    assert message in str(exc.value)
    assert main(["run", str(path), "-o", str(tmp_path / "r.coffea")]) == 2
    assert message in _error_line(capsys)


# --- compressed chunk files ------------------------------------------------------------


def test_chunk_names_are_unique_and_stay_inside():
    a = compressed_chunk_name("ds", "/x/one/jets.root", 0, 10)
    b = compressed_chunk_name("ds", "/x/two/jets.root", 0, 10)
    assert a != b
    assert a.startswith("ds/jets_")
    assert a.endswith("_0_10.root")
    for bad in ("..", ".", "../up", "a/b", "/abs", "", "..\\x"):
        rel = Path(compressed_chunk_name(bad, "/x/../..", 0, 1))
        assert len(rel.parts) == 2
        assert ".." not in rel.parts
        assert "." not in rel.parts
        assert not rel.is_absolute()
    assert safe_name("..") == "___"
    assert safe_name("ok-name_1.2") == "ok-name_1.2"


def test_compress_dir_same_file_names_do_not_collide(tmp_path):
    for sub, seed in (("one", 1), ("two", 2)):
        (tmp_path / sub).mkdir()
        counts, jets = make_jets(120, seed=seed)
        write_nanoaod(tmp_path / sub / "jets.root", counts, jets)
    fileset = {
        "..": [str(tmp_path / "one" / "jets.root"), str(tmp_path / "two" / "jets.root")],
    }
    out = tmp_path / "inner" / "compressed"
    res = run(fileset, compress_dir=out, chunksize=1000)
    files = sorted(res.output[".."]["compressed"]["files"])
    assert len(files) == 2 == len(set(files))
    for f in files:
        assert Path(f).exists()
        assert Path(os.path.realpath(f)).is_relative_to(os.path.realpath(out))
    assert not (tmp_path / "inner" / "jets.root").exists()
    assert res.output[".."]["compressed"]["events"] == 240


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunksize": 0}, "chunksize must be >= 1, got 0"),
        ({"workers": -1}, "workers must be >= 1, got -1"),
        ({"maxchunks": 0}, "maxchunks must be >= 1 or None"),
        ({"latent_bits": 8}, "latent_bits needs compress_dir"),
    ],
)
def test_run_api_checks_its_arguments(sample, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run([sample], **kwargs)
