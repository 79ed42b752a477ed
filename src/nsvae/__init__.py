"""nsvae: train, evaluate and compare disentangling VAEs, built around the Non-Synergistic VAE.

The verbs of a notebook, loaded (with torch) on first use so that ``import nsvae`` and the
command line's help stay fast: :func:`nsvae.api.train`, :func:`nsvae.api.evaluate`,
:func:`nsvae.api.load`, :func:`nsvae.api.dataset`, and the registries ``METRICS`` and
``OBJECTIVES``.
"""

__version__ = "0.1.0"
API = ("METRICS", "OBJECTIVES", "dataset", "evaluate", "load", "train")


def __getattr__(name: str):
    """The front door's names, from :mod:`nsvae.api` on first use (PEP 562); once loaded,
    they are this module's own. (The training stage is the package :mod:`nsvae.training`, so
    that ``nsvae.train`` is only ever the verb.)"""
    if name in API:
        from nsvae import api

        globals().update({verb: getattr(api, verb) for verb in API})
        return globals()[name]
    raise AttributeError(f"module 'nsvae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])
