"""Studies: many trials of one experiment, run with Ray Tune and summarised in one table.

``load_study`` reads a study file (:mod:`nsvae.sweep.study`), ``run_sweep`` runs its unfinished
trials (:mod:`nsvae.sweep.runner`), ``load_results`` reads the table they fill
(:mod:`nsvae.sweep.results`) and ``write_study_report`` draws it (:mod:`nsvae.sweep.report`).
Only running needs Ray.
"""

from nsvae.sweep.results import load_results
from nsvae.sweep.runner import Resources, SweepSummary, run_sweep
from nsvae.sweep.study import Study, Trial, load_study

__all__ = ["Resources", "Study", "SweepSummary", "Trial", "load_results", "load_study",
           "run_sweep"]
