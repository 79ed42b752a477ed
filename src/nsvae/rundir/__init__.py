"""The run directory: :class:`Run`, :func:`load_run`, ``config.json`` and checkpoints.

Training writes a run through this layer; evaluation, the report and sweeps read it back.
"""

from nsvae.rundir.run import Run, export_run, load_run, read_run_config, trained_on

__all__ = ["Run", "export_run", "load_run", "read_run_config", "trained_on"]
