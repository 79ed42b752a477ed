"""The ``nsvae`` command.

One module per command (:mod:`~nsvae.cli.train`, :mod:`~nsvae.cli.evaluate`, ...), each
registering itself on :data:`nsvae.cli.app.app`; :func:`main` (:mod:`nsvae.cli.program`) runs
it. Exit codes: 0 success, 2 usage or configuration, the typed codes of :mod:`nsvae.errors`
(3 data, 4 run directory or checkpoint, 5 training, 6 metric, 7 run directory in use), 70 an
unexpected internal error, 130 SIGINT (Ctrl-C), 143 SIGTERM.
"""

# the commands register, in the order their help lists them
from nsvae.cli import train, evaluate, report, robustness, sweep, data  # noqa: F401, I001
from nsvae.cli.app import app
from nsvae.cli.program import main, run

__all__ = ["app", "main", "run"]
