"""The command line starts light: no command imports what it does not use.

Each check runs a fresh interpreter and reads its ``sys.modules``, so a module-level import
of torch (or coffea, matplotlib, ...) added anywhere on the path of ``hepae --help`` fails
here. The start-up time itself is measured by ``benchmarks/cli_startup.py``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import hepae_coffea
from hepae_coffea.cli import command_names

ROOT = Path(__file__).resolve().parents[1]

#: packages that take tenths of a second or more to import
HEAVY = (
    "torch",
    "coffea",
    "dask",
    "distributed",
    "uproot",
    "awkward",
    "matplotlib",
    "mplhep",
    "hist",
    "onnx",
    "onnxruntime",
    "pandas",
    "numpy",
    "vector",
)

_REPORT = """
import json, sys
{body}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _loaded_after(body: str) -> set[str]:
    """Top-level packages imported by a fresh interpreter after running ``body``."""
    out = subprocess.run(
        [sys.executable, "-c", _REPORT.format(body=body)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_cli_loads_no_heavy_package():
    loaded = _loaded_after("import hepae_coffea.cli")
    assert "hepae_coffea" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        *[[cmd, "--help"] for cmd in command_names()],
    ],
    ids=lambda argv: "-".join(a.lstrip("-") for a in argv),
)
def test_help_loads_no_heavy_package(argv):
    body = (
        "from hepae_coffea.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
    )
    loaded = _loaded_after(body)
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_info_reads_metadata_without_torch():
    """``hepae info`` reads the model file's metadata: no torch, no numpy."""
    body = "from hepae_coffea.cli import main\nassert main(['info', '--json']) == 0\n"
    loaded = _loaded_after(body)
    assert "hepae_coffea" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_package_import_is_light_and_names_resolve_lazily():
    loaded = _loaded_after("import hepae_coffea; hepae_coffea.__version__; hepae_coffea.HepaeError")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    loaded = _loaded_after("import hepae_coffea; hepae_coffea.read_jets")
    assert {"numpy", "awkward"} <= loaded


def test_public_names_resolve_to_their_modules():
    data = importlib.import_module("hepae_coffea.io.jets")
    errors = importlib.import_module("hepae_coffea.errors")
    export = importlib.import_module("hepae_coffea.model.export")
    train = importlib.import_module("hepae_coffea.training.loop")
    evaluate = importlib.import_module("hepae_coffea.processing.evaluate")

    assert hepae_coffea.read_jets is data.read_jets
    assert hepae_coffea.ModelFileError is errors.ModelFileError
    assert hepae_coffea.load_model is export.load_model
    assert hepae_coffea.TrainConfig is train.TrainConfig
    # a function named like its module stays the function once the module is imported
    assert hepae_coffea.train is train.train
    assert hepae_coffea.evaluate is evaluate.evaluate
    for name in hepae_coffea.__all__:
        assert getattr(hepae_coffea, name) is not None, name
    assert set(dir(hepae_coffea)) >= set(hepae_coffea.__all__)


def test_public_function_is_not_shadowed_by_its_module_in_a_fresh_interpreter():
    """``from hepae_coffea import evaluate, train`` gives the functions, even after their modules."""
    body = (
        "import hepae_coffea.processing.evaluate, hepae_coffea.training.loop\n"
        "from hepae_coffea import evaluate, train\n"
        "assert callable(evaluate) and evaluate.__module__ == 'hepae_coffea.processing.evaluate'\n"
        "assert callable(train) and train.__module__ == 'hepae_coffea.training.loop'\n"
    )
    assert "torch" in _loaded_after(body)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'read_jet'"):
        _ = hepae_coffea.read_jet


def test_one_version_string(capsys):
    """pyproject takes the version from the package; ``--version`` prints the same."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    assert module.startswith("hepae_coffea")
    version = getattr(__import__(module, fromlist=[name]), name)
    assert version == hepae_coffea.__version__
    from hepae_coffea.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hepae-coffea {version}"


def test_commands_without_a_model_run_without_torch(tmp_path):
    """``hepae info`` reads metadata only; an array codec compresses and decompresses with
    no network: none of them imports torch (nor coffea or matplotlib)."""
    sample = ROOT / "hepae_coffea" / "data" / "sample_qcd.root"
    packed, restored = tmp_path / "packed.root", tmp_path / "restored.root"
    body = (
        "from hepae_coffea.cli import main\n"
        "assert main(['info']) == 0\n"
        f"assert main(['compress', {str(sample)!r}, '-o', {str(packed)!r},"
        " '--codec', 'truncate', '--precision', 'nanoaod']) == 0\n"
        f"assert main(['decompress', {str(packed)!r}, '-o', {str(restored)!r}]) == 0\n"
    )
    loaded = _loaded_after(body)
    assert restored.exists()
    assert {"uproot", "awkward"} <= loaded  # the commands did read and write ROOT files
    assert loaded.isdisjoint({"torch", "coffea", "matplotlib", "dask"}), sorted(loaded)
