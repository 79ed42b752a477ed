"""Training: the loop (:func:`train`), run directories (:func:`load_run`, :class:`Run`)."""

from nsvae.errors import TrainingInterrupted
from nsvae.train.trainer import Run, load_run, train

__all__ = ["Run", "TrainingInterrupted", "load_run", "train"]
