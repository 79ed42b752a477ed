"""Training: the loop (:func:`train`) and one step (:func:`train_step`).

Run directories (:class:`Run`, :func:`load_run`) live in :mod:`nsvae.rundir`; they are
re-exported here because :func:`train` returns a :class:`Run`.
"""

from nsvae.errors import TrainingInterrupted
from nsvae.rundir import Run, load_run
from nsvae.training.step import train_step
from nsvae.training.trainer import train

__all__ = ["Run", "TrainingInterrupted", "load_run", "train", "train_step"]
