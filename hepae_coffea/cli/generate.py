"""hepae generate: a Pythia 8 jet sample."""

from __future__ import annotations

import argparse

from .options import POSITIVE, Subparsers


def add_parser(sub: Subparsers) -> None:
    """Add ``generate``."""
    p = sub.add_parser(
        "generate", help="generate a Pythia 8 jet sample (needs the 'generate' extra)"
    )
    p.add_argument(
        "--process", required=True, choices=["qcd", "qcd_flat", "wjets", "zjets", "ttbar", "zprime"]
    )
    p.add_argument("--events", type=POSITIVE, required=True, help="number of events")
    p.add_argument("--seed", type=int, default=1, help="Pythia random seed (1..900000000)")
    p.add_argument("--pthat-min", type=float, default=None, help="QCD pTHatMin in GeV (default 50)")
    p.add_argument("--pthat-max", type=float, default=None, help="pTHatMax in GeV (a pT-hat slice)")
    p.add_argument(
        "--bias-pow",
        type=float,
        default=None,
        help="flatten the pT-hat spectrum by (pTHat/ref)^POW, events weighted (genWeight); 0: off",
    )
    p.add_argument("--bias-ref", type=float, default=None, help="bias reference pT-hat in GeV")
    p.add_argument("--jet-ptmin", type=float, default=20.0, help="minimum jet pT in GeV (20)")
    p.add_argument(
        "--jet-etamax", type=float, default=None, help="maximum jet |eta| (default: no cut)"
    )
    p.add_argument("-o", "--output", required=True, help="output ROOT file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    """Generate the sample; print where it went and the rate."""
    from ..generate.pythia import generate

    s = generate(
        args.process,
        args.events,
        args.seed,
        args.output,
        pthat_min=args.pthat_min,
        pthat_max=args.pthat_max,
        bias_pow=args.bias_pow,
        bias_ref=args.bias_ref,
        jet_ptmin=args.jet_ptmin,
        jet_etamax=args.jet_etamax,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    print(
        f"wrote {s.path}: {s.n_events} {s.process} events, {s.n_jets} jets "
        f"({s.events_per_second:.0f} events/s)"
    )
    return 0
