"""Shared pieces of the disentanglement metrics (after google-research/disentanglement_lib).

Sampling keeps disentanglement_lib's use of the random state (factors are drawn batch by batch, in
the same order), while the representation is always called on buffered chunks of at most
``REPRESENTATION_BATCH`` observations, never on a whole sample at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nsvae.errors import MetricError

REPRESENTATION_BATCH = 256
NUM_BINS = 20
# Largest |code| accepted. Beyond it the metrics' estimators overflow (float32 in the gradient
# boosted trees of DCI, squares in variances) or stall (SAP's SVMs run for minutes at 1e300).
MAX_ABS_CODE = 1e6


def check_codes(codes, num_rows: int | None = None, name: str = "codes") -> np.ndarray:
    """Return ``codes`` as a float64 [n, d] array, or raise :class:`MetricError`.

    Parameters
    ----------
    codes : array-like [n, d]
        Representations, one row per observation.
    num_rows : int, optional
        Expected number of rows (the number of observations that were represented).
    name : str
        What the array is called in the error message.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 1 or codes.shape[0] < 1:
        raise MetricError(
            f"{name} must be a 2-D array [n, d] with n, d >= 1, got shape {codes.shape}"
        )
    if num_rows is not None and codes.shape[0] != num_rows:
        raise MetricError(f"{name}: got {codes.shape[0]} codes for {num_rows} observations")
    if not (np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.integer)):
        raise MetricError(f"{name} must be numeric, got dtype {codes.dtype}")
    codes = codes.astype(np.float64, copy=False)
    if not np.all(np.isfinite(codes)):
        raise MetricError(f"{name} contain NaN or infinite values")
    largest = float(np.abs(codes).max())
    if largest > MAX_ABS_CODE:
        raise MetricError(
            f"{name} reach {largest:.3g} in absolute value; the metrics take values "
            f"within +-{MAX_ABS_CODE:g}: rescale them (e.g. standardise each column)"
        )
    return codes


def check_factors(factors, codes: np.ndarray | None = None) -> np.ndarray:
    """Return ``factors`` as int64 [n, K] (one row per code), or raise :class:`MetricError`."""
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] < 1:
        raise MetricError(
            f"factors must be a 2-D array [n, K] with K >= 1, got shape {factors.shape}"
        )
    if not np.issubdtype(factors.dtype, np.integer):
        raise MetricError(f"factors must be integer class labels, got dtype {factors.dtype}")
    if codes is not None and factors.shape[0] != codes.shape[0]:
        raise MetricError(f"{factors.shape[0]} factor rows for {codes.shape[0]} codes")
    return factors.astype(np.int64, copy=False)


def require_variation(factors: np.ndarray, metric: str, names: Sequence[str] | None = None) -> None:
    """Raise :class:`MetricError` when a factor column takes a single value (``metric`` needs 2)."""
    for k in range(factors.shape[1]):
        if np.all(factors[:, k] == factors[0, k]):
            name = names[k] if names is not None else f"factor {k}"
            raise MetricError(f"{metric}: {name} takes a single value; it needs at least two")


def require_factor_sizes(data, metric: str) -> None:
    """Raise :class:`MetricError` if a factor of ``data`` has a single value (before sampling)."""
    for name, size in zip(data.factor_names, data.factor_sizes, strict=True):
        if size < 2:
            raise MetricError(
                f"{metric}: factor {name!r} takes a single value; it needs at least two"
            )


def require_latents(codes: np.ndarray, metric: str, minimum: int = 2) -> None:
    """Raise :class:`MetricError` if there are fewer than ``minimum`` latents."""
    if codes.shape[1] < minimum:
        raise MetricError(f"{metric} needs at least {minimum} latents, got {codes.shape[1]}")


INPUTS = ("representation", "encoder")


def require_count(value: int, name: str, minimum: int = 1) -> None:
    """Raise :class:`MetricError` if a sample count is below ``minimum``."""
    if int(value) != value or value < minimum:
        raise MetricError(f"{name} must be an integer >= {minimum}, got {value}")


def represent(
    representation: Callable, observations: np.ndarray, batch_size: int = REPRESENTATION_BATCH
):
    """Codes [n, d] of ``observations``; the representation sees at most ``batch_size`` at once."""
    chunks = []
    for start in range(0, len(observations), batch_size):
        chunk = observations[start : start + batch_size]
        chunks.append(check_codes(representation(chunk), len(chunk), "representation codes"))
    if len({c.shape[1] for c in chunks}) > 1:
        raise MetricError("representation returned codes of varying length")
    return np.concatenate(chunks)


def encode_factors(
    data,
    encoder: Callable,
    factors: np.ndarray,
    random_state,
    batch_size: int = REPRESENTATION_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances [n, d] of the observations of ``factors``, in chunks.

    ``encoder`` maps observations [m, ...] to ``(mu, logvar)`` numpy arrays [m, d] (for a model,
    ``functools.partial(nsvae.models.encode_observations, model)``); it sees at most
    ``batch_size`` observations at once.
    """
    mus, logvars = [], []
    for start in range(0, len(factors), batch_size):
        chunk = data.sample_observations_from_factors(
            factors[start : start + batch_size], random_state
        )
        mu, logvar = encoder(chunk)
        mus.append(check_codes(mu, len(chunk), "encoder means"))
        logvars.append(check_codes(logvar, len(chunk), "encoder log-variances"))
    return np.concatenate(mus), np.concatenate(logvars)


def sample_and_represent(
    representation: Callable,
    draw: Callable[[], tuple[np.ndarray, np.ndarray]],
    num_draws: int,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_size: int = REPRESENTATION_BATCH,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_draws`` times, represent the observations in chunks, and reduce each draw's codes.

    Parameters
    ----------
    representation : callable
        Observations [m, ...] -> codes [m, d].
    draw : callable
        ``draw() -> (labels, observations)``; called ``num_draws`` times in order, so the random
        state is used exactly as by disentanglement_lib's sequential loops.
    num_draws : int
        Number of draws.
    reduce : callable, optional
        ``codes [g, rows_per_draw, d] -> features [g, ...]`` for ``g`` draws of equal size; without
        it the codes of all draws are concatenated.
    batch_size : int
        Observations of consecutive draws are buffered and represented at most this many at a time.

    Returns
    -------
    labels, features : ndarray
        Labels of the draws stacked (concatenated when ``reduce`` is None), and the features.
    """
    labels, features, buffer = [], [], []

    def flush():
        rows = [len(obs) for obs in buffer]
        codes = represent(representation, np.concatenate(buffer), batch_size)
        if reduce is None:
            features.append(codes)
        else:
            features.append(reduce(codes.reshape(len(rows), rows[0], codes.shape[1])))
        buffer.clear()

    buffered = 0
    for _ in range(num_draws):
        label, observations = draw()
        labels.append(label)
        buffer.append(observations)
        buffered += len(observations)
        if buffered + len(observations) > batch_size:
            flush()
            buffered = 0
    if buffer:
        flush()
    stack = np.stack if reduce is not None else np.concatenate
    return stack(labels), np.concatenate(features)


def sample_factor_codes(
    data, representation: Callable, num_points: int, random_state, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Factors [n, K] and codes [n, d] of ``num_points`` random observations.

    disentanglement_lib's ``generate_batch_factor_code``: ``batch_size`` only sets how many
    factors are drawn at a time (which fixes the random stream); the representation is called on
    chunks of up to :data:`REPRESENTATION_BATCH` observations.
    """
    require_count(num_points, "num_points")
    sizes = [min(batch_size, num_points - start) for start in range(0, num_points, batch_size)]
    draws = iter(sizes)
    return sample_and_represent(
        representation, lambda: data.sample(next(draws), random_state), len(sizes)
    )


def sample_train_test(
    data, representation, num_train: int, num_test: int, random_state, batch_size: int
) -> tuple[tuple, tuple]:
    """Train and test (factors, codes) pairs sampled one after the other, as disentanglement_lib."""
    train = sample_factor_codes(data, representation, num_train, random_state, batch_size)
    test = sample_factor_codes(data, representation, num_test, random_state, batch_size)
    return train, test


def check_pairs(factors, codes) -> tuple[np.ndarray, np.ndarray]:
    """Given (factors, codes) rows, validated (see :func:`check_codes`, :func:`check_factors`)."""
    codes = check_codes(codes)
    return check_factors(factors, codes), codes


def check_split(train, test) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(factors, codes, factors_test, codes_test)`` of train and test pairs."""
    codes = check_codes(train[1], name="train codes")
    codes_test = check_codes(test[1], name="test codes")
    return check_factors(train[0], codes), codes, check_factors(test[0], codes_test), codes_test


def metric(
    *,
    fast: dict | None = None,
    input: str = "representation",
    factors: bool = True,
    pixels: bool = False,
):
    """Declare a metric's inputs and its ``--fast`` parameters beside its definition.

    Parameters
    ----------
    fast : dict, optional
        Smaller sample counts for ``nsvae evaluate --fast`` and evaluation during training.
    input : {"representation", "encoder"}
        The second argument the metric takes after ``data``: a representation function
        (observations -> codes, disentanglement_lib's contract) or an encoder (observations ->
        ``(mu, logvar)``), for metrics that need the posterior's variance.
    factors : bool
        Whether the metric reads the dataset's ground-truth factors; one that reads only its
        observations (``factors=False``) also scores data without them (an image collection).
    pixels : bool
        The metric reads the values of the observations it draws, not only through its
        representation or encoder. Otherwise a cached evaluation may hand it grid indices in
        place of observations (:mod:`nsvae.metrics.codes`), which it must pass on as they are.
    """
    if input not in INPUTS:
        raise ValueError(f"unknown metric input {input!r} (choose from: {', '.join(INPUTS)})")

    def declare(function):
        function.input_kind = input
        function.needs_factors = factors
        function.fast_params = dict(fast or {})
        function.reads_pixels = pixels
        return function

    return declare


def split_codes(factors, codes, random_state, test_fraction: float = 1 / 3):
    """Validate given (factors, codes) rows and split them at random into train and test pairs.

    The default test fraction is disentanglement_lib's 5,000 test / 15,000 points.
    """
    factors, codes = check_pairs(factors, codes)
    if not 0 < test_fraction < 1:
        raise MetricError(f"test_fraction must be in (0, 1), got {test_fraction}")
    num_test = int(round(len(codes) * test_fraction))
    if num_test < 1 or num_test >= len(codes):
        raise MetricError(f"{len(codes)} rows are too few to split into train and test sets")
    order = random_state.permutation(len(codes))
    test, train = order[:num_test], order[num_test:]
    return (factors[train], codes[train]), (factors[test], codes[test])


def histogram_discretize(codes: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
    """Discretise each latent into ``num_bins`` equal-width bins over its range (int [n, d]).

    disentanglement_lib's ``_histogram_discretize``: ``np.digitize`` against the left bin edges of
    ``np.histogram``; a constant latent falls in a single bin.
    """
    require_count(num_bins, "num_bins")
    return np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T], axis=1)


def _column_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels [n, c] recoded so that column j takes the values ``start_j .. start_j + m_j - 1``
    (its distinct labels side by side), and the starts [c]."""
    codes = np.stack([np.unique(col, return_inverse=True)[1] for col in labels.T], axis=1)
    sizes = codes.max(axis=0) + 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return codes + starts, starts


def discrete_mutual_info(x: np.ndarray, y: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Plug-in mutual information (nats) between every column of ``x`` [n, a] and of ``y`` [n, b].

    Equals ``sklearn.metrics.mutual_info_score(y[:, k], x[:, j])`` for every pair (the
    disentanglement_lib matrix ``m[j, k]``): all contingency tables come from one product of
    one-hot encodings, accumulated over chunks of ``chunk`` rows.

    Returns
    -------
    ndarray [a, b]
    """
    n = x.shape[0]
    cx, sx = _column_codes(x)
    cy, sy = _column_codes(y)
    width_x, width_y = int(cx.max()) + 1, int(cy.max()) + 1
    joint = np.zeros((width_x, width_y))
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        hx = np.zeros((len(cx[rows]), width_x))
        hy = np.zeros((len(cy[rows]), width_y))
        np.put_along_axis(hx, cx[rows], 1.0, axis=1)
        np.put_along_axis(hy, cy[rows], 1.0, axis=1)
        joint += hx.T @ hy
    joint /= n
    px = joint[:, : (sy[1] if len(sy) > 1 else width_y)].sum(axis=1)
    py = joint[: (sx[1] if len(sx) > 1 else width_x)].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / np.outer(px, py)), 0.0)
    mi = np.add.reduceat(np.add.reduceat(terms, sx, axis=0), sy, axis=1)
    return np.clip(mi, 0.0, None)


def discrete_entropy(y: np.ndarray) -> np.ndarray:
    """Plug-in entropy (nats) of every column of ``y`` [n, K] (``mutual_info_score(y_k, y_k)``)."""
    out = np.empty(y.shape[1])
    for k, col in enumerate(y.T):
        p = np.unique(col, return_counts=True)[1] / len(col)
        out[k] = -np.sum(p * np.log(p))
    return out
