"""Faults: SIGTERM, full disks, damaged checkpoints and files, Dask workers that die."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
import uproot

from hepae_coffea.cli import main
from hepae_coffea.errors import HepaeError
from hepae_coffea.io.atomic import OutputWriteError, atomic_outputs
from hepae_coffea.processing.run import run
from hepae_coffea.training.loop import load_checkpoint, save_checkpoint

from .conftest import make_jets, write_nanoaod

HEPAE = [sys.executable, "-m", "hepae_coffea.cli"]


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _flat(output):
    """Every histogram's flow-inclusive view and every counter, keyed by name."""
    import hist

    items = {}
    for dataset, d in output.items():
        for key, v in d.items():
            if key == "residual_moments":
                # Mean storage: counts exact; means and squared deviations depend on the
                # order chunks are merged in (float rounding), so to 1e-12
                view = v.view(flow=True)
                items[f"{dataset}/{key}/count"] = np.asarray(view["count"])
                for f in ("value", "_sum_of_deltas_squared"):
                    items[f"{dataset}/{key}/{f}~"] = np.asarray(view[f])
            elif isinstance(v, hist.Hist):
                items[f"{dataset}/{key}"] = np.asarray(v.view(flow=True))
            elif key == "distribution":
                for var, h in v.items():
                    items[f"{dataset}/{key}/{var}"] = np.asarray(h.view(flow=True))
            elif key == "counters":
                items.update({f"{dataset}/c/{k}": n for k, n in v.items() if k != "model_loads"})
    return items


def _assert_same(a, b):
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if k.endswith("~"):
            np.testing.assert_allclose(fa[k], fb[k], rtol=1e-12, atol=0, err_msg=k)
        else:
            np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory):
    """A file large enough that compress and run take a few seconds."""
    counts, jets = make_jets(60_000, seed=21)
    path = tmp_path_factory.mktemp("faults") / "big.root"
    write_nanoaod(path, counts, jets)
    return path


def _wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# --- SIGTERM -----------------------------------------------------------------------------


def test_sigterm_during_compress_leaves_nothing(big_sample, tmp_path):
    out = tmp_path / "out" / "c.root"
    out.parent.mkdir()
    proc = subprocess.Popen(
        [*HEPAE, "compress", str(big_sample), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: list(out.parent.glob("*.tmp")), 120, "the temporary output")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "hepae compress: terminated"
    assert list(out.parent.iterdir()) == []  # no *.tmp, no half output


def test_sigterm_during_futures_run_stops_workers(big_sample, tmp_path):
    out = tmp_path / "r.coffea"
    proc = subprocess.Popen(
        [
            *HEPAE,
            "run",
            str(big_sample),
            "-o",
            str(out),
            "--executor",
            "futures",
            "--workers",
            "2",
            "--chunksize",
            "2000",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    try:
        children = _wait_for(
            lambda: (
                [c for c in parent.children(recursive=True) if c.is_running()][:2]
                if len(parent.children(recursive=True)) >= 2
                else None
            ),
            120,
            "the executor's worker processes",
        )
        time.sleep(0.5)  # let them start on chunks
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    assert list(tmp_path.iterdir()) == []


# --- full disk ---------------------------------------------------------------------------


def test_full_disk_during_run_writes_nothing(tmp_path, monkeypatch, capsys):
    counts, jets = make_jets(200, seed=4)
    data = tmp_path / "in" / "data.root"
    data.parent.mkdir()
    write_nanoaod(data, counts, jets)
    monkeypatch.setattr("hepae_coffea.io.results.write_results", _disk_full)
    out = tmp_path / "res" / "r.coffea"
    assert main(["run", str(data), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"cannot write {out}" in err[0]
    assert "No space left on device" in err[0]
    assert list(out.parent.iterdir()) == []  # not the .coffea without its .root


def test_full_disk_during_compress_blames_the_output(tmp_path, monkeypatch, capsys):
    counts, jets = make_jets(200, seed=4)
    data = tmp_path / "data.root"
    write_nanoaod(data, counts, jets)
    monkeypatch.setattr(uproot.writing.writable.WritableTree, "extend", _disk_full)
    out = tmp_path / "out" / "c.root"
    assert main(["compress", str(data), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"cannot write {out}: No space left on device" in err[0]
    assert "data.root" not in err[0]
    assert list(out.parent.iterdir()) == []


def test_outputs_appear_all_or_none(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"

    def fail_on_second():
        with atomic_outputs([a, b]) as (ta, _):
            Path(ta).write_text("a")
            raise RuntimeError("second output failed")

    with pytest.raises(RuntimeError):
        fail_on_second()
    assert list(tmp_path.iterdir()) == []
    with atomic_outputs([a, b]) as (ta, tb):
        Path(ta).write_text("a")
        Path(tb).write_text("b")
        assert not a.exists()  # nothing appears before both are written
    assert a.read_text() + b.read_text() == "ab"


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    state = {k: 0 for k in ("config", "model", "optimizer", "scheduler", "torch_rng", "history")}
    state.update(best_state=None, best_val=1.0, epoch=1, seconds=0.0)
    save_checkpoint(state, path)
    real_save = torch.save

    def half_then_full(obj, f):
        real_save(obj, f)
        with open(f, "r+b") as fh:
            fh.truncate(50)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(OutputWriteError, match=r"cannot write .*checkpoint\.pt: No space"):
        save_checkpoint({**state, "epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 1  # the previous checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


# --- files damaged in the middle, Dask workers that die ---------------------------------


def _corrupt_in_the_middle(src: Path, dst: Path) -> None:
    """Copy ``src`` with one basket of Jet_pt in the middle of the file overwritten."""
    raw = bytearray(src.read_bytes())
    with uproot.open(src) as f:
        branch = f["Events"]["Jet_pt"]
        seeks = branch.member("fBasketSeek")[: branch.num_baskets]
        sizes = branch.member("fBasketBytes")[: branch.num_baskets]
    assert len(seeks) >= 3
    start, size = int(seeks[len(seeks) // 2]), int(sizes[len(seeks) // 2])
    raw[start + size // 2 : start + size - 4] = b"\xa5" * (size - 4 - size // 2)
    dst.write_bytes(bytes(raw))


def _basket_file(path: Path, seed: int) -> None:
    """A NanoAOD-style file whose branches have 5 baskets of 200 events each."""
    import awkward as ak

    counts, jets = make_jets(1000, seed=seed)
    with uproot.recreate(path) as f:
        for k in range(5):
            c = counts[200 * k : 200 * (k + 1)]
            n0 = int(counts[: 200 * k].sum())
            part = {v: a[n0 : n0 + int(c.sum())].astype(np.float32) for v, a in jets.items()}
            data = {
                "run": np.ones(len(c), np.uint32),
                "luminosityBlock": np.ones(len(c), np.uint32),
                "event": np.arange(200 * k + 1, 200 * (k + 1) + 1, dtype=np.uint64),
                "Jet": ak.zip({v: ak.unflatten(a, c) for v, a in part.items()}),
            }
            if k == 0:
                f.mktree(
                    "Events",
                    {n: (v.type if isinstance(v, ak.Array) else v.dtype) for n, v in data.items()},
                )
            f["Events"].extend(data)


def test_skip_bad_files_skips_files_that_fail_mid_read(tmp_path, capsys):
    good, damaged = tmp_path / "good.root", tmp_path / "damaged.root"
    _basket_file(good, 31)
    _basket_file(tmp_path / "src.root", 32)
    _corrupt_in_the_middle(tmp_path / "src.root", damaged)
    fileset = {"ds": [str(good), str(damaged)]}
    with pytest.raises(HepaeError):
        run(fileset, chunksize=200)
    res = run(fileset, chunksize=200, skip_bad_files=True)
    assert len(res.skipped_files) == 1
    assert "damaged.root: failed while being read" in res.skipped_files[0]
    _assert_same(res.output, run({"ds": [str(good)]}, chunksize=200).output)
    out = tmp_path / "r.coffea"
    fs = tmp_path / "fs.json"
    fs.write_text(json.dumps(fileset))
    argv = ["run", str(fs), "-o", str(out), "--chunksize", "200", "--skip-bad-files", "-q"]
    assert main(argv) == 0
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert len(summary["_skipped_files"]) == 1
    assert str(damaged) in summary["_skipped_files"][0]
    assert summary["ds"]["counters"]["events"] == 1000


def test_dask_worker_killed_mid_run_gives_identical_histograms(big_sample, tmp_path):
    from distributed import Client, LocalCluster

    fileset = {"big": [str(big_sample)]}
    expected = run(fileset, chunksize=500, maxchunks=16)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    try:
        pids = client.run(os.getpid)
        result: dict = {}

        def work():
            try:
                result["res"] = run(
                    fileset, executor="dask", client=client, chunksize=500, maxchunks=16
                )
            except BaseException as err:  # noqa: BLE001  (re-raised in the test thread)
                result["err"] = err

        thread = threading.Thread(target=work)
        thread.start()
        _wait_for(lambda: any(client.processing().values()), 60, "chunks on the workers")
        time.sleep(0.3)
        assert thread.is_alive()  # mid-run
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=120)
        assert not thread.is_alive()
        # a chunk that keeps failing ends the run with one line and a count of chunks done
        _basket_file(tmp_path / "src.root", 33)
        _corrupt_in_the_middle(tmp_path / "src.root", tmp_path / "damaged.root")
        with pytest.raises(HepaeError) as exc:
            run([tmp_path / "damaged.root"], executor="dask", client=client, chunksize=200)
        message = str(exc.value)
        assert "\n" not in message
        assert re.match(r"Dask run failed after [0-4] of 5 chunks were done: ", message)
    finally:
        client.close()
        with contextlib.suppress(TimeoutError):  # a slow worker shutdown on a busy machine
            cluster.close(timeout=60)
    assert "err" not in result, result.get("err")
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == "zombie"
    _assert_same(result["res"].output, expected.output)
