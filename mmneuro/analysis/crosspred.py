"""Cross-prediction of each unit's spike counts on held-out syllables, the baselines, and their scores.

Counts are spikes per syllable window (syllable, unit); ``exposure_s`` is the window length (s).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmneuro.analysis.neurons import deviance_explained, pearson_columns

MIN_RATE = 1e-6  # predicted counts are floored so the Poisson deviance stays finite


def mean_rate_baseline(train_counts: np.ndarray, train_exposure_s: np.ndarray, exposure_s: np.ndarray) -> np.ndarray:
    """Each unit's training-set mean rate (spikes / s) times each held-out window's length: (N, U)."""
    rate = train_counts.sum(axis=0) / train_exposure_s.sum()
    return np.outer(exposure_s, rate)


def ridge_fit_predict(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, *, alphas: tuple[float, ...],
                      x_components: int | None = None, y_components: int | None = None, seed: int = 0) -> np.ndarray:
    """Ridge regression (alpha by leave-one-out CV on the training set) of ``train_y`` (N, ...) on
    standardised ``train_x`` (N, ...), both flattened per row; ``x_components`` / ``y_components``
    reduce the inputs / the targets to that many principal components of the training set first
    (a target PCA is inverted back). Returns predictions for ``x``, shaped like ``train_y``'s rows."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat_x, flat_y = train_x.reshape(len(train_x), -1), train_y.reshape(len(train_y), -1)
    steps = [PCA(int(min(x_components, *flat_x.shape)), random_state=seed)] if x_components else []
    model = make_pipeline(*steps, StandardScaler(), RidgeCV(alphas=alphas))
    if y_components:
        model = TransformedTargetRegressor(model, transformer=PCA(int(min(y_components, *flat_y.shape)),
                                                                  random_state=seed), check_inverse=False)
    model.fit(flat_x, flat_y)
    return model.predict(x.reshape(len(x), -1)).reshape(len(x), *train_y.shape[1:])


def ridge_baseline(train_images: np.ndarray, train_counts: np.ndarray, images: np.ndarray, *,
                   n_components: int, alphas: tuple[float, ...], seed: int = 0) -> np.ndarray:
    """Audio -> neural: ridge regression from the PCA-reduced spectrogram (N, F, T) to counts;
    returns predicted counts (N, U), floored at MIN_RATE."""
    pred = ridge_fit_predict(train_images, train_counts, images, alphas=alphas, x_components=n_components, seed=seed)
    return np.maximum(pred, MIN_RATE)


def ridge_images(train_counts: np.ndarray, train_images: np.ndarray, counts: np.ndarray, *,
                 n_components: int, alphas: tuple[float, ...], seed: int = 0) -> np.ndarray:
    """Neural -> audio, the linear stimulus reconstruction: ridge regression from standardised
    sqrt spike counts (N, ...) (sqrt: Poisson counts get a near-constant variance) to the leading
    ``n_components`` principal components of the training spectrograms (N, F, T); returns images."""
    return ridge_fit_predict(np.sqrt(train_counts), train_images, np.sqrt(counts), alphas=alphas,
                             y_components=n_components, seed=seed)


def tree_images(train_features: np.ndarray, train_images: np.ndarray, features: np.ndarray, *,
                n_trees: int = 50, min_leaf: int = 3, seed: int = 0) -> np.ndarray:
    """E[image | features], nonparametric: extremely randomised trees (Geurts et al. 2006; no feature
    scaling to choose) from features (N, K) to every pixel of the images (N, F, T). Rows with a
    non-finite feature are left out of the fit and predicted as NaN."""
    from sklearn.ensemble import ExtraTreesRegressor

    ok, rows = np.isfinite(train_features).all(1), np.isfinite(features).all(1)
    out = np.full((len(features), *train_images.shape[1:]), np.nan)
    if rows.any():
        trees = ExtraTreesRegressor(n_trees, min_samples_leaf=min_leaf, random_state=seed, n_jobs=1)
        trees.fit(train_features[ok], train_images[ok].reshape(ok.sum(), -1))
        out[rows] = trees.predict(features[rows]).reshape(rows.sum(), *train_images.shape[1:])
    return out


def syllable_r(images: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-syllable Pearson r between predicted and actual images (N, ...) over pixels: (N,)."""
    return pearson_columns(images.reshape(len(images), -1).T, predictions.reshape(len(predictions), -1).T)


def nll_gain(counts: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per unit, Poisson NLL of the null minus that of ``predictions`` (expected counts in the same
    windows as ``counts``, (N, U)), in nats: (U,). The null is each unit's mean of ``counts`` over
    these windows, as the Neural Latents Benchmark's (nlb_tools.evaluation.bits_per_spike: the mean
    of the evaluated spikes per neuron) and as deviance_explained's; not the training mean scaled per
    window (that is the mean_rate method, scored against this null like any other). Both rates are floored at
    MIN_RATE; the log y! terms cancel in the difference and are left out."""
    y = np.asarray(counts, dtype=np.float64)
    mu, mu0 = np.maximum(predictions, MIN_RATE), np.maximum(y.mean(axis=0), MIN_RATE)
    return (mu0 - y * np.log(mu0)).sum(axis=0) - (mu - y * np.log(mu)).sum(axis=0)


def bits_per_spike(counts: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per unit, (NLL_null - NLL_model) / the unit's spikes / ln 2 (nll_gain; NLB's bits per spike) of
    ``predictions`` (N, U) against ``counts`` (N, U): (U,), NaN for a unit with no spikes."""
    spikes = np.asarray(counts, dtype=np.float64).sum(axis=0)
    return nll_gain(counts, predictions) / np.where(spikes > 0, spikes, np.nan) / np.log(2)


def overall_bits_per_spike(counts: np.ndarray, predictions: np.ndarray) -> float:
    """All units together: the sum over units of nll_gain / all spikes / ln 2 (NaN with no spikes).
    Not the mean of the per-unit values: units with more spikes weigh more, and units with no spikes
    still add their NLL difference."""
    spikes = float(np.asarray(counts, dtype=np.float64).sum())
    return float(nll_gain(counts, predictions).sum() / spikes / np.log(2)) if spikes > 0 else float("nan")


def overall_table(counts: np.ndarray, predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """overall_bits_per_spike per method, on the rows each method predicts (as score_table)."""
    out = {}
    for method, pred in predictions.items():
        ok = np.isfinite(pred).all(axis=1)
        out[method] = overall_bits_per_spike(counts[ok], pred[ok])
    return out


def score_table(counts: np.ndarray, predictions: dict[str, np.ndarray], units: np.ndarray,
                direction: str = "audio->neural") -> pd.DataFrame:
    """Per unit x method: Pearson r, Poisson deviance explained (null: the held-out mean count), and
    bits per spike (same null; bits_per_spike).

    Rows where a method has no prediction (NaN, e.g. the oracle for unmatched syllables) are left
    out of that method's scores only.
    """
    rows = []
    for method, pred in predictions.items():
        ok = np.isfinite(pred).all(axis=1)
        y, p = counts[ok], np.maximum(pred[ok], MIN_RATE)
        r, dev, bps = pearson_columns(y, p), deviance_explained(y, p), bits_per_spike(y, p)
        for k, unit in enumerate(units):
            rows.append({"direction": direction, "unit": int(unit), "method": method,
                         "n_syllables": int(ok.sum()), "pearson_r": float(r[k]),
                         "deviance_explained": float(dev[k]), "mse": float(np.mean((y[:, k] - p[:, k]) ** 2)),
                         "bits_per_spike": float(bps[k])})
    return pd.DataFrame(rows)


def psth_r2(counts: np.ndarray, predictions: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per unit, the Neural Latents Benchmark's PSTH R² (nlb_tools.evaluation.eval_psth): the mean over
    each group's syllables of the actual binned ``counts`` and of the ``predictions`` (both (N, U, B)),
    stacked over groups and bins, and 1 - SS_res / SS_tot over those G·B points: (U,). ``groups``:
    (N,) group index per syllable, negative = left out. Unlike NLB (sklearn's r2_score) the actual
    PSTHs are unsmoothed and a unit whose actual PSTHs are all equal gets NaN, not 0 or 1."""
    labels = np.unique(groups[groups >= 0])
    actual = np.stack([counts[groups == g].mean(0) for g in labels], axis=-2)  # (U, G, B)
    pred = np.stack([predictions[groups == g].mean(0) for g in labels], axis=-2)
    actual, pred = actual.reshape(len(actual), -1), pred.reshape(len(pred), -1)
    ss_res = ((actual - pred) ** 2).sum(1)
    ss_tot = ((actual - actual.mean(1, keepdims=True)) ** 2).sum(1)
    return 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)


def finite_mean(values) -> float:
    """Mean of the finite ``values`` (NaN if none; no warning): a per-unit score averaged over units."""
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else float("nan")


def image_error_rows(images: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """Neural -> audio cross-generation error: per method, the mean squared pixel error and the mean
    per-syllable Pearson r between predicted and actual images (N, F, T). Syllables a method has no
    prediction for (NaN, e.g. an oracle's unmatched syllables) are left out of its row only."""
    rows = []
    for method, pred in predictions.items():
        p = pred.reshape(len(pred), -1)
        ok = np.isfinite(p).all(axis=1)
        flat = images[ok].reshape(ok.sum(), -1)
        rows.append({"direction": "neural->audio", "unit": -1, "method": method, "n_syllables": int(ok.sum()),
                     "pearson_r": float(np.nanmean(syllable_r(flat, p[ok]))), "deviance_explained": np.nan,
                     "mse": float(np.mean((flat - p[ok]) ** 2)), "bits_per_spike": np.nan})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean Pearson r and deviance explained per direction and method (over units)."""
    return (table.groupby(["direction", "method"], sort=False)[["pearson_r", "deviance_explained", "mse"]]
            .mean().reset_index())
