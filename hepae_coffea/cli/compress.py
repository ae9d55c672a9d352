"""hepae compress and decompress: ROOT files with their jets compressed, and restored."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .options import LEVEL, Subparsers, add_format_options

if TYPE_CHECKING:
    from ..compress.files import CompressionSummary


def add_parser(sub: Subparsers) -> None:
    """Add ``compress`` and ``decompress``."""
    c = sub.add_parser(
        "compress", help="write a ROOT file with jets compressed (codec or autoencoder latents)"
    )
    c.add_argument("inputs", nargs="+", help="ROOT files (same layout; format detected)")
    c.add_argument("-o", "--output", required=True, help="compressed ROOT file to write")
    c.add_argument(
        "--codec",
        choices=["ae", "truncate", "quantize", "pcodec", "entropy"],
        default=None,
        help="ae: the model's latents (with --precision plus corrections so every value "
        "meets it); truncate: mantissa bits; quantize: integers in (log pt, eta, phi, "
        "log mass); pcodec: those integers coded with pcodec; entropy: those integers "
        "range-coded with a model fitted on the file's jets and embedded (about 2 kB). "
        "Default: ae without --precision; with it entropy for 15000 jets or more, pcodec "
        "(smaller there) for fewer",
    )
    c.add_argument(
        "--precision",
        default=None,
        metavar="SPEC",
        help="max error per value: a preset (nanoaod: pt 10, eta 12, phi 12, mass 10 bits; "
        "atlas-high: 7 bits; atlas-low: 15 bits) or VAR=Nbits, VAR=X (absolute, GeV for "
        "pt/mass) or VAR=Xrel (relative) tokens, e.g. pt=4.9e-4rel,eta=4.9e-4,phi=2.45e-4,"
        "mass=4.9e-4rel",
    )
    c.add_argument("--model", default=None, help="model file (default: the shipped model)")
    c.add_argument(
        "--latent-bits",
        type=int,  # checked by compress(), which names the valid range
        default=None,
        help="round latents to M mantissa bits (0..23; default: keep float32)",
    )
    c.add_argument(
        "--model-ref",
        action="store_true",
        help="store only the model's name and SHA-256, not its weights",
    )
    c.add_argument(
        "--allow-larger",
        action="store_true",
        help="write the output even if it is bigger than the input (refused by default)",
    )
    c.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="BRANCH",
        help="trees written flat (ATLAS PHYSLITE): also keep this per-event branch",
    )
    add_format_options(c)
    d = sub.add_parser("decompress", help="restore the jets of a file written by compress")
    d.add_argument("input", help="file written by hepae compress")
    d.add_argument("-o", "--output", required=True, help="restored ROOT file to write")
    d.add_argument(
        "--model",
        default=None,
        help="the model file that compressed the input (needed for --model-ref files; "
        "refused if its SHA-256 differs)",
    )
    d.add_argument(
        "--model-dir",
        default=None,
        help="folder searched for the *.pt model with the recorded SHA-256",
    )
    for p in (c, d):
        p.add_argument(
            "--compression",
            choices=["zlib", "lzma", "lz4", "zstd"],
            default=None,
            help="ROOT compression algorithm of the output (default: the input's own)",
        )
        p.add_argument(
            "--level", type=LEVEL, default=None, help="compression level (default: the input's)"
        )
        p.add_argument("--overwrite", action="store_true", help="replace an existing output")
        p.add_argument(
            "--device",
            choices=["auto", "cpu", "cuda"],
            default="cpu",
            help="where the model runs (default cpu; auto: cuda when available)",
        )
    c.add_argument("--tree", default=None, help="tree name (default: the detected format's)")
    c.add_argument("--collection", default=None, help="jet collection / branch prefix")
    c.set_defaults(func=cmd_compress)
    d.set_defaults(func=cmd_decompress)


def _print_sizes(verb: str, s: CompressionSummary) -> None:
    """Print the counts, rate, byte sizes and output of a (de)compression."""
    print(
        f"{verb} {s.events} events, {s.jets} jets in {s.seconds:.2f} s "
        f"({s.jets / max(s.seconds, 1e-9):.3g} jets/s)"
    )
    print(f"bytes: {s.bytes_in} -> {s.bytes_out} (ratio {s.ratio:.3f}); wrote {s.output}")


def cmd_compress(args: argparse.Namespace) -> int:
    """Compress the inputs into one file; print the codec's errors and the sizes."""
    from ..compress.files import compress
    from ..io.guards import check_outputs

    check_outputs([*args.inputs, args.model], [args.output])
    s = compress(
        args.inputs,
        args.output,
        args.model,
        codec=args.codec,
        precision=args.precision,
        latent_bits=args.latent_bits,
        compression=args.compression,
        level=args.level,
        tree=args.tree,
        collection=args.collection,
        units=args.units,
        fmt=args.format,
        keep=args.keep,
        model_ref=args.model_ref,
        allow_larger=args.allow_larger,
        overwrite=args.overwrite,
        device=args.device,
    )
    x = s.extra
    if x.get("format"):
        print(x["format"])
    if x.get("layout") == "flat":
        print(
            f"{x['tree']}: xAOD containers uproot cannot rewrite; wrote a flat tree of the event "
            f"identifiers, the compressed jets and kept branches (jets in {x['units']})"
        )
    for item in x.get("not_copied", []):
        print(f"not copied: {item['name']} ({item['class']}): {item['reason']}")
    if x.get("precision") is not None:
        errs = ", ".join(
            f"{v} {e['rel']:.3g} rel" if v in ("pt", "mass", "E") else f"{v} {e['abs']:.3g}"
            for v, e in x["max_error"].items()
        )
        print(f"codec {x['codec']} at precision {x['precision']}: max error {errs}")
        if "fraction_corrected" in x:
            print(f"jets with stored corrections: {100 * x['fraction_corrected']:.2f}%")
    if "energy" in x:  # jets with E: the model took the mass computed from E
        e = x["energy"]
        print(
            f"E restored from the decoded pt, eta and mass: max error {e['max_error']['rel']:.3g} "
            f"rel ({e['max_error_real_mass']['rel']:.3g} for jets with E >= |p|), 68% of jets "
            f"within {e['rel_error_q68']:.3g}; {e['jets_negative_m2']} jet(s) with E < |p| "
            f"(negative m^2, out of the model's domain) were given mass 0"
        )
    _print_sizes("compressed", s)
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    """Restore the jets of a compressed file; print the sizes."""
    from ..compress.files import decompress
    from ..io.guards import check_outputs

    check_outputs([args.input, args.model], [args.output])
    s = decompress(
        args.input,
        args.output,
        args.model,
        model_dir=args.model_dir,
        compression=args.compression,
        level=args.level,
        overwrite=args.overwrite,
        device=args.device,
    )
    _print_sizes("restored", s)
    return 0
