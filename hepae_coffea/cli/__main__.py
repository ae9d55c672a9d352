"""``python -m hepae_coffea.cli``: the ``hepae`` command."""

import sys

from . import main

sys.exit(main())
