from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoEventsFactory
from coffea.util import load

from hepae_coffea.cli import main
from hepae_coffea.errors import HepaeError, InputFileError, MissingBranchError
from hepae_coffea.io.schemas import JetNanoAODSchema
from hepae_coffea.processing.run import build_fileset, choose_schema, run, save_output, summarize

from .conftest import make_jets, write_nanoaod


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    d = tmp_path_factory.mktemp("fileset")
    files = {}
    for name, seed in (("qcd", 10), ("other", 11)):
        counts, jets = make_jets(600, seed=seed)
        counts[:100] = 0  # a chunk without jets
        jets = {k: v[: counts.sum()] for k, v in jets.items()}
        files[name] = d / f"{name}.root"
        write_nanoaod(files[name], counts, jets)
    return {name: {"files": {str(p): "Events"}} for name, p in files.items()}


def _flatten(out):
    """(name, counts-or-values) for every histogram and counter, in a fixed order."""
    items = []
    for dataset in sorted(out):
        d = out[dataset]
        for key in sorted(d):
            v = d[key]
            if key == "counters":
                # model_loads is per-executor bookkeeping, not a physics result
                items += [
                    (f"{dataset}/{key}/{k}", np.asarray(v[k]))
                    for k in sorted(v)
                    if k != "model_loads"
                ]
            elif isinstance(v, dict):
                items += [(f"{dataset}/{key}/{k}", v[k].values(flow=True)) for k in sorted(v)]
            elif key == "residual_moments":
                view = v.view()
                items.append((f"{dataset}/{key}/count", view["count"]))
                items.append((f"{dataset}/{key}/value", view["value"]))
                # the spread too: the RMS in the report comes from it
                items.append((f"{dataset}/{key}/spread", view["_sum_of_deltas_squared"]))
            else:
                items.append((f"{dataset}/{key}", v.values(flow=True)))
    return items


def _assert_same(a, b):
    fa, fb = _flatten(a), _flatten(b)
    assert [n for n, _ in fa] == [n for n, _ in fb]
    for (name, x), (_, y) in zip(fa, fb, strict=True):
        if name.endswith(("residual_moments/value", "residual_moments/spread")):
            # float sums: order of accumulation
            np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-16, err_msg=name)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def iterative_output(two_datasets):
    return run(two_datasets, executor="iterative", chunksize=200).output


def test_futures_matches_iterative(two_datasets, iterative_output):
    res = run(two_datasets, executor="futures", workers=2, chunksize=200)
    _assert_same(iterative_output, res.output)
    assert res.output["qcd"]["counters"]["model_loads"] <= 2


def test_dask_local_cluster_matches_iterative(two_datasets, iterative_output):
    res = run(two_datasets, executor="dask", workers=2, chunksize=200)
    _assert_same(iterative_output, res.output)
    loads = sum(d["counters"]["model_loads"] for d in res.output.values())
    assert loads <= 2  # once per worker process, not per chunk (8 chunks)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """A separately started `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    d = tmp_path_factory.mktemp("dask")
    sfile = d / "scheduler.json"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sfile),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=d,
        )
    ]
    try:
        deadline = time.time() + 60
        while not sfile.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(sfile.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    cwd=d,
                )
            )
        from distributed import Client

        with Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_dask_external_scheduler_matches_iterative(two_datasets, iterative_output, dask_scheduler):
    res = run(two_datasets, executor="dask", scheduler=dask_scheduler, chunksize=200)
    _assert_same(iterative_output, res.output)


def test_scheduler_that_does_not_answer(two_datasets):
    t0 = time.time()
    with pytest.raises(HepaeError, match=r"cannot connect to Dask scheduler 'tcp://127.0.0.1:9'"):
        run(two_datasets, executor="dask", scheduler="tcp://127.0.0.1:9", chunksize=200)
    assert time.time() - t0 < 60


def test_dask_awkward_wrapper_equals_runner(two_datasets, iterative_output):
    """coffea's dask-awkward route with the torch_wrapper gives the Runner's histograms."""
    from hepae_coffea.processors.compression import JetCompressionProcessor
    from hepae_coffea.processors.torch_wrapper import JetAutoencoderWrapper

    path = next(iter(two_datasets["qcd"]["files"]))
    events = NanoEventsFactory.from_root(
        {path: "Events"}, schemaclass=JetNanoAODSchema, mode="dask"
    ).events()
    wrapper = JetAutoencoderWrapper()
    rec = wrapper.reconstruct(events.Jet).compute()
    score = wrapper.reconstruct(events.Jet, output="score").compute()
    jets = events.Jet.compute()
    assert ak.num(rec, axis=1).tolist() == ak.num(jets, axis=1).tolist()
    # fill the processor's histograms from the dask-route arrays and compare bin by bin
    proc = JetCompressionProcessor()
    from hepae_coffea.processing.hists import make_hists
    from hepae_coffea.processors.compression import ChunkResult

    flat = ak.flatten(rec, axis=1)
    orig = np.stack([ak.to_numpy(ak.flatten(jets[v])) for v in proc.variables], axis=1)
    recon = ak.to_numpy(flat)
    out = make_hists(proc.metadata)
    proc._fill(
        out,
        ChunkResult(
            orig,
            recon,
            np.zeros((len(orig), 3), np.float32),
            ak.to_numpy(ak.flatten(score)),
            ak.to_numpy(ak.num(jets, axis=1)),
            len(orig),
            len(orig),
            0,
            False,
        ),
    )
    ref = iterative_output["qcd"]
    for name in ("residual", "residual_abs", "score_jet", "score_event_max"):
        np.testing.assert_array_equal(
            out[name].values(flow=True), ref[name].values(flow=True), err_msg=name
        )


def test_save_output_and_summary(iterative_output, tmp_path):
    files = save_output(iterative_output, tmp_path / "res.coffea")
    assert [f.name for f in files] == ["res.coffea", "res.root", "res.hists.json"]
    back = load(files[0])
    _assert_same(iterative_output, back)
    with uproot.open(files[1]) as f:
        h = f["qcd/residual_pt"].to_hist()
        np.testing.assert_array_equal(
            h.values(), iterative_output["qcd"]["residual"][{"variable": "pt"}].values()
        )
        assert "other/score_event_max" in f
    s = summarize(iterative_output, seconds=2.0)
    assert set(s["qcd"]["residuals"]) == {"pt", "eta", "phi", "mass"}
    assert s["qcd"]["residuals"]["eta"]["kind"] == "absolute"
    # the default model's widths (model card, held-out QCD: pt 1.4e-3, phi 1.7e-3; this
    # synthetic sample: about 1.7e-3 and 2.3e-3) within a factor of two
    r = s["qcd"]["residuals"]
    assert 5e-4 < r["pt"]["sigma68"] < 3.5e-3
    assert 5e-4 < r["phi"]["sigma68"] < 4.5e-3
    assert 5e-4 < r["mass"]["sigma68"] < 3.5e-3
    assert s["_total"]["jets"] == sum(
        d["counters"]["jets_selected"] for d in iterative_output.values()
    )
    assert list(tmp_path.glob("*.tmp")) == []


def test_fileset_forms(tmp_path, two_datasets):
    path = next(iter(two_datasets["qcd"]["files"]))
    # no tree given: "" (the detected format's tree is used)
    assert build_fileset([path]) == {"qcd": {"files": {path: ""}}}
    assert build_fileset([path], tree="Events") == {"qcd": {"files": {path: "Events"}}}
    fs = tmp_path / "fs.yaml"
    fs.write_text(f"sig:\n  files:\n    {path}: Events\nbkg: [{path}]\n")
    assert build_fileset([fs]) == {
        "sig": {"files": {path: "Events"}},
        "bkg": {"files": {path: ""}},
    }
    js = tmp_path / "fs.json"
    js.write_text(json.dumps(two_datasets))
    assert build_fileset([js]) == two_datasets
    assert choose_schema(path) == "nanoaod"


def test_bad_files(tmp_path, two_datasets):
    good = next(iter(two_datasets["qcd"]["files"]))
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(Path(good).read_bytes()[:2000])  # truncated
    with pytest.raises(InputFileError, match=r"corrupt\.root: cannot be read as a ROOT file"):
        run([good, corrupt])
    res = run([good, corrupt], skip_bad_files=True, chunksize=200)
    assert list(res.output) == ["qcd"]
    assert "corrupt.root" in res.skipped_files[0]
    with pytest.raises(InputFileError, match=r"missing\.root: file not found"):
        run([tmp_path / "missing.root"])
    nojets = tmp_path / "nojets.root"
    with uproot.recreate(nojets) as f:
        f["Events"] = {"run": np.ones(3, np.uint32), "Muon_pt": np.ones(3, np.float32)}
    with pytest.raises(InputFileError, match=r"nojets\.root: no jets found.*Events:Muon_\*"):
        run([nojets])


def test_cli_run(two_datasets, tmp_path, capsys):
    path = next(iter(two_datasets["qcd"]["files"]))
    out = tmp_path / "r" / "res.coffea"
    assert main(["run", path, "-o", str(out), "--chunksize", "200", "-q"]) == 0
    text = capsys.readouterr().out
    assert "sigma68" in text
    assert "jets/s" in text
    assert out.exists()
    assert out.with_suffix(".root").exists()
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["qcd"]["counters"]["events"] == 600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.root"], "missing.root: file not found"),
        (["run", "{good}", "--model", "{bad}"], "not a hepae-coffea model"),
        (["run", "{good}", "--field", "energy=E"], "field mapping names ['energy']"),
        (["run", "{good}", "--collection", "FatJet"], "no jets found"),
        (
            ["run", "{good}", "--scheduler", "tcp://127.0.0.1:9"],
            "--scheduler needs --executor dask",
        ),
    ],
)
def test_cli_run_errors(two_datasets, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.pt"
    bad.write_text("x")
    good = next(iter(two_datasets["qcd"]["files"]))
    argv = [a.replace("{good}", good).replace("{bad}", str(bad)) for a in argv]
    assert main([*argv, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_missing_variable_branch_is_reported(tmp_path):
    counts, jets = make_jets(50, seed=12)
    del jets["mass"]
    path = tmp_path / "nomass.root"
    write_nanoaod(path, counts, jets)
    with pytest.raises(
        MissingBranchError, match=r"\['mass'\].*available: \['Jet_eta', 'Jet_phi', 'Jet_pt'\]"
    ):
        run([path])


def test_iterative_run_uses_one_torch_thread_and_restores_the_setting(two_datasets, monkeypatch):
    import torch

    from hepae_coffea.processors.compression import JetCompressionProcessor

    seen = []
    real = JetCompressionProcessor.process

    def process(self, events):
        out = real(self, events)
        seen.append(torch.get_num_threads())
        return out

    monkeypatch.setattr(JetCompressionProcessor, "process", process)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run({"qcd": two_datasets["qcd"]}, chunksize=100, maxchunks=1)
        assert seen == [1]
        assert torch.get_num_threads() == 2  # the caller's setting, restored
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="torch_threads must be >= 1"):
        run({"qcd": two_datasets["qcd"]}, torch_threads=0)
