"""Limit a cosmic-ray session to the physics functions of a module, and summarise it.

``python tools/mutation_scope.py scope SESSION.sqlite MODULE.py NAME [NAME ...]`` marks
every pending mutation outside the named functions or methods (``func`` or
``Class.method``; line ranges found with :mod:`ast` at run time, so edits elsewhere in the
module do not shift them) as skipped, as cosmic-ray's own filters do.

``python tools/mutation_scope.py summary SESSION.sqlite [--survivors]`` prints killed,
survived and the score (killed / tested, skipped mutants left out), and optionally each
survivor's diff.

``python tools/mutation_scope.py retest SESSION.sqlite`` forgets the survivors' results, so
the next ``cosmic-ray exec`` runs them again (after tests were added).
"""

from __future__ import annotations

import argparse
import ast
import sqlite3
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult


def function_ranges(module: Path, names: list[str]) -> list[tuple[int, int]]:
    """(first, last) line of each named function or ``Class.method`` in ``module``."""
    tree = ast.parse(module.read_text())
    found: dict[str, tuple[int, int]] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                found[prefix + child.name] = (child.lineno, child.end_lineno or child.lineno)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    missing = [n for n in names if n not in found]
    if missing:
        sys.exit(f"{module}: no function(s) {missing}; have {sorted(found)}")
    return [found[n] for n in names]


def scope(session: Path, module: Path, names: list[str]) -> None:
    ranges = function_ranges(module, names)
    kept = skipped = 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            lines = [m.start_pos[0] for m in item.mutations]
            if all(any(a <= ln <= b for a, b in ranges) for ln in lines):
                kept += 1
                continue
            skipped += 1
            db.set_result(
                item.job_id,
                WorkResult(
                    output="outside the scoped functions", worker_outcome=WorkerOutcome.SKIPPED
                ),
            )
    print(f"{session.name}: {kept} mutants in {', '.join(names)}; {skipped} outside skipped")


def summary(session: Path, survivors: bool) -> tuple[int, int]:
    killed = survived = 0
    rows = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.SURVIVED:
                survived += 1
                m = item.mutations[0]
                rows.append((m.start_pos[0], m.operator_name, m.occurrence, result.diff or ""))
            else:
                killed += 1
        pending = db.num_work_items - db.num_results
    total = killed + survived
    score = 100.0 * killed / total if total else float("nan")
    print(
        f"{session.stem}: {killed} killed, {survived} survived of {total} tested "
        f"({score:.1f}% killed), {pending} not run"
    )
    if survivors:
        for line, op, occ, diff in sorted(rows):
            print(f"--- survivor line {line}: {op} #{occ}")
            print("\n".join(d for d in diff.splitlines() if d.startswith(("+", "-"))))
    return killed, survived


def retest(session: Path) -> None:
    with sqlite3.connect(session) as con:
        n = con.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount
    print(f"{session.name}: {n} survivor(s) will be tested again")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scope")
    s.add_argument("session", type=Path)
    s.add_argument("module", type=Path)
    s.add_argument("names", nargs="+")
    r = sub.add_parser("summary")
    r.add_argument("sessions", type=Path, nargs="+")
    r.add_argument("--survivors", action="store_true")
    t = sub.add_parser("retest")
    t.add_argument("session", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "scope":
        scope(args.session, args.module, args.names)
    elif args.cmd == "retest":
        retest(args.session)
    else:
        for path in args.sessions:
            summary(path, args.survivors)


if __name__ == "__main__":
    main()
