"""Latent <-> frequency bands: band energies, energy-weighted frequency, traversals, band tables.

Spectrograms are the dataset's syllable images (syllable, freq, time), log-power in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmneuro.analysis.neurons import correlation, quantile_bins

FEATURES = ("mean_freq_hz", "peak_freq_hz", "bandwidth_hz", "duration_s", "fm_slope_hz_per_s")
FREQUENCY_FEATURES = ("mean_freq_hz", "peak_freq_hz")  # a cluster that goes with these gets a band


def band_edges_hz(lo_hz: float, hi_hz: float, width_hz: float) -> np.ndarray:
    """Edges of consecutive ``width_hz`` bands from ``lo_hz`` up to at most ``hi_hz`` (Hz)."""
    n = int(np.floor((hi_hz - lo_hz) / width_hz + 1e-9))
    return lo_hz + width_hz * np.arange(n + 1)


def band_energy(images: np.ndarray, freq_hz: np.ndarray, edges_hz: np.ndarray) -> np.ndarray:
    """Mean image value in each band (rows with edge_i <= f < edge_{i+1}), over time: (N, bands).

    A band with no image row in it gets NaN.
    """
    per_row = np.asarray(images, dtype=np.float64).mean(axis=-1)  # (N, F)
    which = np.digitize(freq_hz, edges_hz) - 1
    out = np.full((len(per_row), len(edges_hz) - 1), np.nan)
    for b in range(len(edges_hz) - 1):
        rows = which == b
        if rows.any():
            out[:, b] = per_row[:, rows].mean(axis=1)
    return out


def weighted_frequency_hz(images: np.ndarray, freq_hz: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Energy-weighted mean frequency (Hz) of each image (..., F, T) within [lo_hz, hi_hz].

    Energy per row = summed image above the image's median (the noise floor), so a quiet background
    does not pull the estimate towards the middle of the range. Images with no energy give NaN.
    """
    images = np.asarray(images, dtype=np.float64)
    rows = (freq_hz >= lo_hz) & (freq_hz <= hi_hz)
    floor = np.median(images, axis=(-2, -1), keepdims=True)
    energy = np.clip(images - floor, 0.0, None)[..., rows, :].sum(axis=-1)
    total = energy.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, energy @ freq_hz[rows] / total, np.nan)


def peak_center(values: np.ndarray, centers: np.ndarray) -> float:
    """Location of the maximum of ``values`` sampled at evenly spaced ``centers``, refined by the
    vertex of the parabola through the peak and its two neighbours (standard 3-point interpolation)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return float("nan")
    i = int(np.nanargmax(values))
    if 0 < i < len(values) - 1 and np.isfinite(values[i - 1 : i + 2]).all():
        a, b, c = values[i - 1 : i + 2]
        denom = a - 2 * b + c
        if denom < 0:
            return float(centers[i] + 0.5 * (a - c) / denom * (centers[1] - centers[0]))
    return float(centers[i])


def traversal_frequencies(decode_mean, z_center: np.ndarray, z_sd: np.ndarray, *, sd_range: float, steps: int,
                          freq_hz: np.ndarray, lo_hz: float, hi_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Decoder traversal: vary one latent over z_center +- sd_range * z_sd (others at the centre).

    ``decode_mean(z (K, D)) -> images (K, F, T)`` is the audio decoder's mean. Returns the offsets
    in SD units (steps,) and the energy-weighted frequency (latent, steps) in Hz.
    """
    offsets = np.linspace(-sd_range, sd_range, steps)
    d = len(z_center)
    grid = np.repeat(z_center[None, None, :], d, axis=0).repeat(steps, axis=1)  # (D, steps, D)
    grid[np.arange(d), :, np.arange(d)] += offsets[None, :] * z_sd[:, None]
    images = decode_mean(grid.reshape(d * steps, d))
    freqs = weighted_frequency_hz(images, freq_hz, lo_hz, hi_hz).reshape(d, steps)
    return offsets, freqs


def latent_band_table(z: np.ndarray, energies: np.ndarray, centers_hz: np.ndarray, features: dict[str, np.ndarray],
                      traversal: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per latent: the band whose energy it correlates with most (signed peak, refined),
    the syllable feature it correlates with most, and (if given) how the traversal moves frequency."""
    r_band = correlation(z, np.nan_to_num(energies))  # (D, bands)
    names = list(features)
    r_feat = correlation(z, np.column_stack([features[k] for k in names])) if names else np.zeros((len(z.T), 0))
    rows = []
    for d in range(z.shape[1]):
        sign = 1.0 if np.nanmax(r_band[d]) >= -np.nanmin(r_band[d]) else -1.0
        row = {"latent": d, "band_center_khz": peak_center(sign * r_band[d], centers_hz) / 1e3,
               "band_r": float(r_band[d][np.nanargmax(sign * r_band[d])])}
        if names:
            j = int(np.argmax(np.abs(r_feat[d])))
            row.update(best_feature=names[j], feature_r=float(r_feat[d, j]))
            row.update({f"r_{k}": float(r_feat[d, i]) for i, k in enumerate(names)})
        if traversal is not None:
            offsets, freqs = traversal
            f = freqs[d]
            ok = np.isfinite(f)
            slope = np.polyfit(offsets[ok], f[ok], 1)[0] if ok.sum() >= 2 else np.nan
            row.update(traversal_low_khz=f[0] / 1e3, traversal_high_khz=f[-1] / 1e3,
                       traversal_slope_khz_per_sd=slope / 1e3)
        rows.append(row)
    return pd.DataFrame(rows)


def correlation_ratio(y: np.ndarray, x: np.ndarray, n_bins: int = 8) -> float:
    """eta^2 of ``y`` on ``x``: the share of y's variance between ``n_bins`` quantile bins of x
    (any tuning-curve shape, not only a monotonic one; 0 for a constant y)."""
    y = np.asarray(y, dtype=np.float64)
    bins = quantile_bins(x, n_bins)
    total = np.sum((y - y.mean()) ** 2)
    if total <= 0:
        return 0.0
    means = np.bincount(bins, y) / np.maximum(np.bincount(bins), 1)
    return float(np.sum((means[bins] - y.mean()) ** 2) / total)


def gaussian_peak_hz(activity: np.ndarray, freq_hz: np.ndarray, start_hz: float) -> float:
    """Centre (Hz) of a Gaussian tuning curve a + b exp(-(f - c)^2 / 2w^2) fitted by least squares to
    ``activity`` against the syllables' frequency, started at ``start_hz``; ``start_hz`` if the fit
    fails. A fit, unlike a correlation peak, is not pulled inwards when the centre lies near the
    edge of the frequencies sung (only one flank of the curve is sampled there)."""
    from scipy.optimize import curve_fit

    f = np.asarray(freq_hz, dtype=np.float64) / 1e3  # kHz keeps the parameters of similar size
    lo, hi = float(f.min()), float(f.max())
    start = float(np.clip(start_hz / 1e3, lo, hi))

    def curve(x, a, b, c, w):
        return a + b * np.exp(-0.5 * ((x - c) / w) ** 2)

    try:
        p, _ = curve_fit(curve, f, activity, p0=[float(np.median(activity)), float(np.ptp(activity)), start, 5.0],
                         bounds=([-np.inf, 0.0, lo, 0.5], [np.inf, np.inf, hi, hi - lo]), maxfev=2000)
    except (RuntimeError, ValueError):
        return float(start_hz)
    return float(p[2] * 1e3)


def cluster_band_table(rates: np.ndarray, labels: np.ndarray, energies: np.ndarray, centers_hz: np.ndarray,
                       features: dict[str, np.ndarray], defining: dict[int, list[tuple[int, float]]],
                       latent_band: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster of tuned units (label >= 1) and one for the untuned units (label -1).

    The cluster's activity is the mean of its units' z-scored rates (rates (N, U) Hz). Its
    ``best_feature`` is the syllable feature explaining most of that activity (correlation ratio
    over quantile bins, ``feature_eta2``). A cluster whose best feature is a frequency
    (FREQUENCY_FEATURES) gets ``band_center_khz``: the centre of a Gaussian tuning curve fitted to
    its activity against the syllables' mean frequency (without that feature: the refined peak of
    its correlation with band energy, whose maximum is ``band_r``); one that goes with duration, FM
    slope, amplitude... is labelled with that feature and gets no band (NaN). Untuned units get neither. Also the defining latents with their
    own bands (the latent-space route to the same answer).
    """
    z_rates = (rates - rates.mean(0)) / np.where(rates.std(0) > 0, rates.std(0), 1.0)
    names = list(features)
    rows = []
    for c in sorted(np.unique(labels), key=lambda c: (c < 0, c)):
        members = labels == c
        row = {"cluster": int(c), "n_units": int(members.sum()), "tuned": bool(c >= 0),
               "label": "untuned", "band_center_khz": np.nan, "band_r": np.nan,
               "best_feature": "", "feature_eta2": np.nan, "defining_latents": "", "latent_bands_khz": ""}
        if c >= 0:
            activity = z_rates[:, members].mean(axis=1)
            r = correlation(np.nan_to_num(energies), activity[:, None])[:, 0]
            eta = {k: correlation_ratio(activity, features[k]) for k in names}
            best = max(eta, key=eta.get) if eta else ""
            in_band = best in FREQUENCY_FEATURES or not eta
            center = peak_center(r, centers_hz)
            if in_band and "mean_freq_hz" in features:
                center = gaussian_peak_hz(activity, features["mean_freq_hz"], center)
            row.update(label="frequency band" if in_band else best, best_feature=best,
                       feature_eta2=eta.get(best, np.nan), band_r=float(np.nanmax(r)),
                       band_center_khz=center / 1e3 if in_band else np.nan)
            lat = defining.get(int(c), [])
            row["defining_latents"] = "; ".join(f"z{d} ({r_:+.2f})" for d, r_ in lat)
            row["latent_bands_khz"] = "; ".join(
                f"z{d}: {latent_band.loc[latent_band.latent == d, 'band_center_khz'].iloc[0]:.1f}" for d, _ in lat)
        rows.append(row)
    return pd.DataFrame(rows)


def cluster_frequency_profiles(rates: np.ndarray, labels: np.ndarray, freq_hz: np.ndarray,
                               edges_hz: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Each cluster's mean z-scored rate (rates (N, U) Hz, units z-scored over syllables) in the
    syllables whose mean frequency ``freq_hz`` (N,) falls in each band of ``edges_hz``: the
    clusters' tuning to frequency at a glance. Returns the cluster ids (tuned ones ascending, then
    -1 for the untuned units if any) and the (clusters, bands) profile, NaN where a band has no syllable."""
    z = (rates - rates.mean(0)) / np.where(rates.std(0) > 0, rates.std(0), 1.0)
    ids = sorted(np.unique(labels).tolist(), key=lambda c: (c < 0, c))
    which = np.digitize(freq_hz, edges_hz) - 1
    out = np.full((len(ids), len(edges_hz) - 1), np.nan)
    for b in range(len(edges_hz) - 1):
        rows = which == b
        if rows.any():
            out[:, b] = [z[np.ix_(rows, labels == c)].mean() for c in ids]
    return ids, out
