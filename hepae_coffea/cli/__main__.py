"""``python -m hepae_coffea.cli``: the ``hepae`` command."""

from . import console_main

console_main()
