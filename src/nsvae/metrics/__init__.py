"""Disentanglement and synergy metrics with google-research/disentanglement_lib's definitions.

Every metric is ``name(data, first, random_state, **params) -> dict``; ``METRICS`` maps names to
them. ``first`` is what the metric declares beside its definition
(:func:`nsvae.metrics.utils.metric`, the function's ``input_kind``): a representation function
(observations -> codes) for most, an encoder (observations -> ``(mu, logvar)``) for
``mig_chen``, ``latent_synergy`` and ``unibound``. Each also declares its ``--fast`` parameters
(``fast_params``) and whether it reads the ground-truth factors (``needs_factors``); those
that do not also score data without any, such as an image collection. Metrics that need only
(factor, code) pairs also take given arrays:
``CODE_METRICS[name](factors, codes, random_state, **params)``; both paths share one core
function per metric. Adding a metric is one module plus one line here.
"""

from __future__ import annotations

from nsvae.metrics.beta_vae import beta_vae
from nsvae.metrics.dci import dci, dci_codes
from nsvae.metrics.factor_vae import factor_vae
from nsvae.metrics.mig import mig, mig_chen, mig_codes
from nsvae.metrics.modularity import modularity_explicitness, modularity_explicitness_codes
from nsvae.metrics.pid import unibound, unibound_codes
from nsvae.metrics.sap import sap, sap_codes
from nsvae.metrics.synergy import factor_synergy, latent_synergy
from nsvae.metrics.unsupervised import unsupervised, unsupervised_codes

METRICS = {
    "beta_vae": beta_vae,
    "factor_vae": factor_vae,
    "mig": mig,
    "mig_chen": mig_chen,
    "dci": dci,
    "sap": sap,
    "modularity_explicitness": modularity_explicitness,
    "unsupervised": unsupervised,
    "latent_synergy": latent_synergy,
    "factor_synergy": factor_synergy,
    "unibound": unibound,
}

CODE_METRICS = {
    "mig": mig_codes,
    "dci": dci_codes,
    "sap": sap_codes,
    "modularity_explicitness": modularity_explicitness_codes,
    "unsupervised": unsupervised_codes,
    "unibound": unibound_codes,
}

__all__ = ["CODE_METRICS", "METRICS", *METRICS]
