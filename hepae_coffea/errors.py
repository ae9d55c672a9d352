"""Exceptions for user mistakes: each names the file, branch or value at fault."""

from __future__ import annotations

__all__ = ["HepaeError", "InputFileError", "MissingBranchError", "ModelFileError", "NoJetsError"]


class HepaeError(Exception):
    """Base class for errors caused by user input; the CLI prints them as one line."""


class InputFileError(HepaeError):
    """A data file is missing, unreadable, corrupt or of an unknown format."""


class MissingBranchError(HepaeError, KeyError):
    """A requested branch or column does not exist; the message lists those that do."""

    def __str__(self) -> str:  # KeyError would add quotes around the message
        return str(self.args[0]) if self.args else ""


class NoJetsError(HepaeError):
    """The input holds no (finite) jets."""


class ModelFileError(HepaeError):
    """A file is not a hepae-coffea model, or does not match the requested variables."""
