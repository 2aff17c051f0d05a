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


def ridge_baseline(train_images: np.ndarray, train_counts: np.ndarray, images: np.ndarray, *,
                   n_components: int, alphas: tuple[float, ...], seed: int = 0) -> np.ndarray:
    """Ridge regression from the PCA-reduced spectrogram to counts (alpha by leave-one-out CV on the
    training set). Images (N, F, T); returns predicted counts (N, U), floored at MIN_RATE."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat_train = train_images.reshape(len(train_images), -1)
    n_comp = int(min(n_components, *flat_train.shape))
    model = make_pipeline(PCA(n_comp, random_state=seed), StandardScaler(), RidgeCV(alphas=alphas))
    model.fit(flat_train, train_counts)
    return np.maximum(model.predict(images.reshape(len(images), -1)), MIN_RATE)


def oracle_counts(units: list[dict], syllables: list[dict | None], onsets_s: np.ndarray,
                  window_s: tuple[np.ndarray, np.ndarray], tail_s: float) -> np.ndarray:
    """Expected counts under the planted rates (the oracle), (N, U); NaN rows where no planted syllable.

    units: ground-truth unit dicts in column order; syllables: the planted syllable of each row;
    onsets_s: detected onsets; window_s: (start, end) of each count window relative to the detected
    onset (s). The planted response is ``planted_rate - baseline`` on top of the baseline, from
    onset + latency to offset + latency + tail (mmneuro.synth), so
    E[count] = baseline * window + drive * |window ∩ response|.
    """
    from mmneuro.synth import planted_rate

    start, end = (np.broadcast_to(np.asarray(w, float), len(onsets_s)) for w in window_s)
    out = np.full((len(syllables), len(units)), np.nan)
    for i, syl in enumerate(syllables):
        if syl is None:
            continue
        shift = syl["onset_s"] - onsets_s[i]  # planted onset relative to the detected one
        dur = syl["offset_s"] - syl["onset_s"]
        for j, u in enumerate(units):
            lo = shift + u["latency_s"]
            hi = lo + dur + tail_s
            overlap = max(0.0, min(end[i], hi) - max(start[i], lo))
            drive = planted_rate(u, syl) - u["baseline_hz"]
            out[i, j] = u["baseline_hz"] * (end[i] - start[i]) + drive * overlap
    return out


def score_table(counts: np.ndarray, predictions: dict[str, np.ndarray], units: np.ndarray) -> pd.DataFrame:
    """Per unit x method: Pearson r and Poisson deviance explained (null: the held-out mean count).

    Rows where a method has no prediction (NaN, e.g. the oracle for unmatched syllables) are left
    out of that method's scores only.
    """
    rows = []
    for method, pred in predictions.items():
        ok = np.isfinite(pred).all(axis=1)
        y, p = counts[ok], np.maximum(pred[ok], MIN_RATE)
        r, dev = pearson_columns(y, p), deviance_explained(y, p)
        for k, unit in enumerate(units):
            rows.append({"direction": "audio->neural", "unit": int(unit), "method": method,
                         "n_syllables": int(ok.sum()), "pearson_r": float(r[k]),
                         "deviance_explained": float(dev[k]), "mse": float(np.mean((y[:, k] - p[:, k]) ** 2))})
    return pd.DataFrame(rows)


def image_error_rows(images: np.ndarray, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    """Neural -> audio cross-generation error: per method, the mean squared pixel error and the mean
    per-syllable Pearson r between predicted and actual images (N, F, T)."""
    rows = []
    flat = images.reshape(len(images), -1)
    for method, pred in predictions.items():
        p = pred.reshape(len(pred), -1)
        r = pearson_columns(flat.T, p.T)
        rows.append({"direction": "neural->audio", "unit": -1, "method": method, "n_syllables": len(images),
                     "pearson_r": float(np.nanmean(r)), "deviance_explained": np.nan,
                     "mse": float(np.mean((flat - p) ** 2))})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean Pearson r and deviance explained per direction and method (over units)."""
    return (table.groupby(["direction", "method"], sort=False)[["pearson_r", "deviance_explained", "mse"]]
            .mean().reset_index())
