"""Studies: many trials of one experiment, run with Ray Tune and summarised in one table.

``load_study`` reads a study file (:mod:`nsvae.sweep.study`), ``run_sweep`` runs its unfinished
trials (:mod:`nsvae.sweep.runner`), ``load_results`` reads the table they fill
(:mod:`nsvae.sweep.results`) and ``write_study_report`` draws it (:mod:`nsvae.sweep.report`).
Only ``run_sweep`` needs Ray: ``run_one_trial`` runs one trial in this process.
"""

from nsvae.sweep.results import load_results
from nsvae.sweep.runner import Resources, SweepSummary, run_one_trial, run_sweep, trial_states
from nsvae.sweep.study import Study, Trial, load_study

__all__ = [
    "Resources",
    "Study",
    "SweepSummary",
    "Trial",
    "load_results",
    "load_study",
    "run_one_trial",
    "run_sweep",
    "trial_states",
]
