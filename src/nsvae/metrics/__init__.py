"""Disentanglement metrics with google-research/disentanglement_lib's definitions and defaults.

Every metric is ``name(data, representation, random_state, **params) -> dict``; ``METRICS`` maps
names to them. Metrics that need only (factor, code) pairs also take given arrays:
``CODE_METRICS[name](factors, codes, random_state, **params)``; both paths share one core function
per metric. ``mig_chen`` takes an encoder returning ``(mu, logvar)`` in place of the representation.
"""

from __future__ import annotations

from nsvae.metrics.beta_vae import beta_vae
from nsvae.metrics.dci import dci, dci_codes
from nsvae.metrics.factor_vae import factor_vae
from nsvae.metrics.mig import mig, mig_chen, mig_codes
from nsvae.metrics.modularity import modularity_explicitness, modularity_explicitness_codes
from nsvae.metrics.sap import sap, sap_codes
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
}

CODE_METRICS = {
    "mig": mig_codes,
    "dci": dci_codes,
    "sap": sap_codes,
    "modularity_explicitness": modularity_explicitness_codes,
    "unsupervised": unsupervised_codes,
}

__all__ = ["CODE_METRICS", "METRICS", *METRICS]
