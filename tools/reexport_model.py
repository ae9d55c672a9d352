"""Export a model file again with this package's code: the same weights and metadata.

    python tools/reexport_model.py IN.pt OUT.pt

A model file carries the TorchScript code of the package version that exported it. When
the package computes the same network faster (another matrix layout, say), this rebuilds
IN's network from its metadata and weights with the current classes, checks that it
reproduces IN's outputs on probe jets (the latents exactly, except where a coarse level
sits on a rounding tie; reconstruction and score within the ONNX export's tolerance on
rows with the same latents) and exports it to OUT. OUT's metadata is IN's, with
``reexported_from`` (IN's SHA-256 and package version) added; the training record is
kept. OUT must not exist, and is never IN.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from hepae_coffea.model.export import export_model, load_model
from hepae_coffea.model.onnx_export import check_rebuilt, eager_model, probe_inputs

#: metadata keys that export_model writes itself
_WRITTEN_BY_EXPORT = ("path", "format", "format_version", "package_version")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="model file to export again")
    p.add_argument("output", type=Path, help="new model file (must not exist)")
    args = p.parse_args(argv)
    if args.output.exists():
        p.error(f"{args.output}: exists; refusing to overwrite it")
    loaded = load_model(args.model)
    eager = eager_model(loaded)
    check_rebuilt(loaded, eager, probe_inputs(loaded.metadata))
    meta = {k: v for k, v in loaded.metadata.items() if k not in _WRITTEN_BY_EXPORT}
    meta["reexported_from"] = {
        "sha256": loaded.sha256,
        "package_version": loaded.metadata.get("package_version"),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    export_model(eager, args.output, meta)
    print(f"wrote {args.output} (same weights as {args.model}, {loaded.sha256[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
