#!/usr/bin/env python3
# /// script
# dependencies = ["nox>=2025.2.9"]
# ///
"""Developer tasks: ``nox -s tests``, ``lint``, ``docs``, ``benchmarks``, ``mutation``.

Each session installs CPU torch 2.13.0 first (as ``make setup`` does, so pip does not pull a
CUDA build), then the package with the extras the session needs. ``make test`` (what CI
runs) and ``nox -s tests`` run the same test suite. Arguments after ``--`` go to the tool:
``nox -s tests -- tests/test_cli.py -x``, ``nox -s docs -- serve``. ``nox`` alone runs
``lint`` and ``tests``.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str = "") -> None:
    """CPU torch first, then the package (editable) with ``extras``."""
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, with the extras CI installs."""
    _install(session, "generate,test,tensorboard,root")
    args = session.posargs or ["-n", "auto", "--maxprocesses", "4", "--dist", "loadfile"]
    session.run("pytest", *args, env={"MPLBACKEND": "Agg"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (check and format) and mypy.

    mypy is strict and checks every module of the library and the processors.
    """
    _install(session)
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/, warnings as errors (``-- serve``: live)."""
    _install(session, "docs")
    if session.posargs and session.posargs[0] == "serve":
        session.run("mkdocs", "serve", *session.posargs[1:])
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(default=False)
def benchmarks(session: nox.Session) -> None:
    """A quick benchmark: command-line start-up (``-- SCRIPT ARGS`` runs another one)."""
    _install(session)
    script = session.posargs or ["benchmarks/cli_startup.py", "--repeat", "5"]
    session.run("python", *script)


@nox.session(default=False)
def mutation(session: nox.Session) -> None:
    """Mutation testing of the physics core (tools/mutation.sh; arguments pass through)."""
    _install(session, "test,mutation")
    session.run("bash", "tools/mutation.sh", *session.posargs, external=True)


if __name__ == "__main__":
    nox.main()
