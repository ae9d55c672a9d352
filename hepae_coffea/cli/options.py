"""Argument types and options shared by the commands, and one option per config field."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, fields
from typing import Any, TypeAlias, get_args, get_origin, get_type_hints

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def kv_pairs(
    items: Sequence[str] | None, what: str, cast: Callable[[str], Any] = str
) -> dict[str, Any]:
    """``NAME=VALUE`` items as a dict, values converted by ``cast``; one-line errors."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} must look like NAME=VALUE, got {item!r}")
        try:
            out[key] = cast(value)
        except ValueError:
            raise ValueError(f"{what} {item!r}: {value!r} is not a valid value") from None
    return out


def int_range(
    lo: int | None = None, hi: int | None = None, what: str = "a whole number"
) -> Callable[[str], int]:
    """argparse type: an int within [lo, hi] (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = (
                f"between {lo} and {hi}"
                if lo is not None and hi is not None
                else (f">= {lo}" if lo is not None else f"<= {hi}")
            )
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {bounds})")
        return value

    return parse


def float_range(
    lo: float | None = None, hi: float | None = None, strict_lo: bool = False
) -> Callable[[str], float]:
    """argparse type: a finite float >= lo (> lo with ``strict_lo``) and <= hi."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if lo is not None and (value <= lo if strict_lo else value < lo):
            raise argparse.ArgumentTypeError(
                f"{value:g} is out of range (must be {'>' if strict_lo else '>='} {lo:g})"
            )
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (must be <= {hi:g})")
        return value

    return parse


POSITIVE = int_range(1)
BITS = int_range(0, 23)
LEVEL = int_range(1, 22)


def add_trust_pickle(p: argparse.ArgumentParser, what: str) -> None:
    """``--trust-pickle``: allow loading ``what``."""
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help=f"allow loading {what} (a pickle can run code: only files you trust)",
    )


def add_format_options(p: argparse.ArgumentParser) -> None:
    """``--format`` and ``--units``: override what format detection finds."""
    from ..io.formats import FORMATS

    p.add_argument(
        "--format",
        choices=list(FORMATS),
        default=None,
        help="force the input format instead of detecting it",
    )
    p.add_argument(
        "--units",
        choices=["MeV", "GeV"],
        default=None,
        help="energy unit of the inputs, overriding the format's",
    )


# --- one option per config field ----------------------------------------------------------


def _option_flags(f: Field[Any]) -> list[str]:
    """A config field's option: its ``flag`` metadata, else ``--name`` (``--no-name`` for a
    setting that is on by default)."""
    flag = f.metadata.get("flag")
    if flag is not None:
        return [flag] if isinstance(flag, str) else list(flag)
    name = f.name.replace("_", "-")
    return [f"--no-{name}" if _field_default(f) is True else f"--{name}"]


def _field_default(f: Field[Any]) -> Any:
    """A dataclass field's default value (a fresh one for a ``default_factory``)."""
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default


def _option_help(f: Field[Any]) -> str:
    """The field's help text with its choices and default appended."""
    default = _field_default(f)
    notes = []
    if "choices" in f.metadata:
        notes.append(", ".join(f.metadata["choices"]))
    if isinstance(default, bool) or (default in ("", {}, []) and "unset" not in f.metadata):
        pass  # a flag's name says what it changes; nothing to say about an empty default
    elif "unset" in f.metadata:  # what the empty default means
        notes.append(f"default: {f.metadata['unset']}")
    elif isinstance(default, list):
        notes.append("default " + ",".join(str(v) for v in default))
    elif isinstance(default, float):
        notes.append(f"default {default:g}")
    else:
        notes.append(f"default {default}")
    text = str(f.metadata["help"]) + (f" ({'; '.join(notes)})" if notes else "")
    return text.replace("%", "%%")


def _number_type(typ: Any, bounds: tuple[Any, Any, bool] | None) -> Callable[[str], Any]:
    """argparse type of an int or float field, enforcing its bounds."""
    lo, hi, strict = bounds or (None, None, False)
    parse: Callable[[str], Any]
    if typ is int:
        parse = int_range(
            None if lo is None else int(lo) + (1 if strict else 0),
            None if hi is None else int(hi),
        )
    else:
        parse = float_range(lo, hi, strict_lo=strict)
    return parse


def add_config_options(p: argparse.ArgumentParser, cls: type[Any]) -> None:
    """One option per field of the dataclass ``cls`` (name, type, help, default from the
    field). Options default to None, so that a value from ``--config`` stays unless given;
    lists and ``VAR=VALUE`` pairs are parsed by `config_values`."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        typ, help_text = hints[f.name], _option_help(f)
        if f.metadata.get("positional"):
            p.add_argument(f.name, nargs="*", help=help_text)
        elif typ is bool:
            action = "store_false" if _field_default(f) else "store_true"
            p.add_argument(
                *_option_flags(f), dest=f.name, action=action, default=None, help=help_text
            )
        elif get_origin(typ) is dict:
            p.add_argument(
                *_option_flags(f),
                dest=f.name,
                action="append",
                metavar=f.metadata.get("metavar"),
                help=help_text,
            )
        elif typ in (int, float):
            p.add_argument(
                *_option_flags(f),
                dest=f.name,
                type=_number_type(typ, f.metadata.get("bounds")),
                default=None,
                help=help_text,
            )
        else:  # str, and comma-separated lists
            p.add_argument(*_option_flags(f), dest=f.name, default=None, help=help_text)


def config_values(args: argparse.Namespace, cls: type[Any], values: dict[str, Any]) -> None:
    """Put the options given on the command line into ``values`` (keys: ``cls``'s fields);
    ``VAR=VALUE`` pairs are merged into those already there."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        v = getattr(args, f.name, None)
        if v is None or (f.metadata.get("positional") and not v):
            continue
        typ, opt = hints[f.name], _option_flags(f)[-1]
        if f.metadata.get("positional"):
            v = list(v)
        elif typ == list[str]:
            v = [s.strip() for s in v.split(",") if s.strip()]
        elif typ == list[int]:
            v = _int_list(v, opt, f.metadata.get("items", "values"))
        elif get_origin(typ) is dict:
            cast = get_args(typ)[1]
            v = {**values.get(f.name, {}), **kv_pairs(v, opt, cast)}
        values[f.name] = v


def _int_list(text: str, opt: str, items: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{opt}: {text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise ValueError(f"{opt}: {items} must be >= 1, got {text!r}")
    return values
