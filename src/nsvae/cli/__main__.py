"""``python -m nsvae.cli``: the ``nsvae`` program."""

import sys

from nsvae.cli import run

sys.exit(run())
