"""Scores against the planted truth of demo data: syllable matching, segmentation F1, cluster ARI, bands.

``truth`` arguments are ``ground_truth.json`` dicts (``mmneuro.synth.load_ground_truth``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_onsets(detected_s: np.ndarray, planted_s: np.ndarray, tolerance_s: float) -> np.ndarray:
    """One-to-one matching of detected to planted onsets (s, same clock): for each detected onset the
    index of its planted syllable, or -1. Pairs are taken closest first, each within ``tolerance_s``."""
    detected_s, planted_s = np.asarray(detected_s, float), np.asarray(planted_s, float)
    match = np.full(len(detected_s), -1)
    if not len(detected_s) or not len(planted_s):
        return match
    order = np.argsort(planted_s)
    pos = np.searchsorted(planted_s[order], detected_s)
    pairs = []
    for i, p in enumerate(pos):
        for j in (p - 1, p):
            if 0 <= j < len(order):
                gap = abs(planted_s[order[j]] - detected_s[i])
                if gap <= tolerance_s:
                    pairs.append((gap, i, int(order[j])))
    used = set()
    for _, i, j in sorted(pairs):
        if match[i] < 0 and j not in used:
            match[i] = j
            used.add(j)
    return match


def segmentation_scores(detected_s: np.ndarray, planted_s: np.ndarray, tolerance_s: float) -> dict:
    """Precision, recall and F1 of detected syllable onsets against planted ones."""
    hits = int((match_onsets(detected_s, planted_s, tolerance_s) >= 0).sum())
    precision = hits / len(detected_s) if len(detected_s) else float("nan")
    recall = hits / len(planted_s) if len(planted_s) else float("nan")
    f1 = 2 * hits / (len(detected_s) + len(planted_s)) if len(detected_s) + len(planted_s) else float("nan")
    return {"n_detected": int(len(detected_s)), "n_planted": int(len(planted_s)), "n_matched": hits,
            "precision": precision, "recall": recall, "f1": f1}


def planted_syllables(sessions: np.ndarray, onsets_s: np.ndarray, truths: dict[str, dict],
                      tolerance_s: float) -> list[dict | None]:
    """The planted syllable dict of every dataset syllable (None where unmatched or no truth),
    matching per session by onset (audio clock)."""
    out: list[dict | None] = [None] * len(onsets_s)
    for session, truth in truths.items():
        rows = np.flatnonzero(np.asarray(sessions) == session)
        planted = truth["syllables"]
        match = match_onsets(np.asarray(onsets_s)[rows], np.array([s["onset_s"] for s in planted]), tolerance_s)
        for row, j in zip(rows, match):
            if j >= 0:
                out[row] = planted[j]
    return out


# planted per-syllable factors -> the latent part that should carry them (issue: latent factorisation)
PLANTED_FACTORS = {"log_amplitude": "audio_private", "harmonic": "audio_private",
                   "mean_freq_hz": "shared", "duration_s": "shared", "slow_drift": "neural_private"}


def planted_factors(sessions: np.ndarray, onsets_s: np.ndarray, truths: dict[str, dict],
                    tolerance_s: float) -> dict[str, np.ndarray]:
    """Per-syllable planted factors (N,), NaN where a syllable has no truth or no planted match:

    audio-only ``log_amplitude`` and ``harmonic`` (no neuron responds to them), the tuning features
    ``mean_freq_hz`` and ``duration_s`` (shared), and the neural-only ``slow_drift``:
    sin(2π t_neural / period + phase) at the syllable's onset on the neural clock (it scales the
    untuned units' rates, ``mmneuro.synth.slow_drift_factor``; defined wherever the session's truth
    has that factor and a clock). Factors a truth does not record are NaN.
    """
    sessions, onsets_s = np.asarray(sessions), np.asarray(onsets_s, dtype=np.float64)
    matched = planted_syllables(sessions, onsets_s, truths, tolerance_s)
    out = {name: np.array([np.nan if s is None else float(s.get(key, np.nan)) for s in matched])
           for name, key in (("log_amplitude", "amplitude"), ("harmonic", "harmonic"),
                             ("mean_freq_hz", "mean_freq_hz"), ("duration_s", "duration_s"))}
    out["log_amplitude"] = np.log(out["log_amplitude"])
    drift = np.full(len(onsets_s), np.nan)
    for session, truth in truths.items():
        factor, clock = truth.get("neural_only_factor"), truth.get("clock")
        if factor is None or clock is None:
            continue
        rows = sessions == session
        t_neural = clock["offset_s"] + (1 + clock["drift"]) * onsets_s[rows]
        drift[rows] = np.sin(2 * np.pi * t_neural / factor["period_s"] + factor["phase_rad"])
    out["slow_drift"] = drift
    return out


def cluster_agreement(units: np.ndarray, recovered: np.ndarray, truth: dict) -> dict:
    """Adjusted Rand index between recovered cluster labels of ``units`` and their planted clusters,
    over all of ``units`` in the truth: the planted untuned units are one group, and so are the units
    called untuned (label -1)."""
    from sklearn.metrics import adjusted_rand_score

    planted = planted_clusters(truth)
    keep = [i for i, u in enumerate(units) if int(u) in planted]
    return {"n_units": len(keep),
            "ari": float(adjusted_rand_score([planted[int(units[i])] for i in keep], np.asarray(recovered)[keep]))}


def untuned_recovery(units: np.ndarray, recovered: np.ndarray, truth: dict) -> dict:
    """How well units called untuned (recovered label -1) match the planted untuned units (good units
    only; mua and noise are dropped downstream by their label): ``untuned_recall`` = share of planted
    untuned units called untuned, ``false_flag_rate`` = share of planted tuned units called untuned
    (NaN where a group is empty)."""
    planted = planted_clusters(truth)
    called = {int(u): int(c) < 0 for u, c in zip(units, recovered) if int(u) in planted}
    untuned = [called[u] for u in called if planted[u] == "untuned"]
    tuned = [called[u] for u in called if planted[u] not in ("untuned", "mua", "noise")]
    return {"n_untuned": len(untuned), "n_tuned": len(tuned),
            "untuned_recall": float(np.mean(untuned)) if untuned else float("nan"),
            "false_flag_rate": float(np.mean(tuned)) if tuned else float("nan")}


def planted_clusters(truth: dict) -> dict[int, str]:
    """unit id -> planted cluster name."""
    return {int(u["unit"]): u["cluster"] for u in truth["units"]}


def band_recovery(units: np.ndarray, recovered: np.ndarray, cluster_band: pd.DataFrame, truth: dict,
                  tolerance_khz: float = 2.0) -> pd.DataFrame:
    """For every planted cluster with a frequency band: the recovered cluster holding most of its units,
    that cluster's band centre, and the error against the planted centre (kHz)."""
    planted = planted_clusters(truth)
    rows = []
    for cl in truth["clusters"]:
        if not cl.get("band_hz"):
            continue
        members = [i for i, u in enumerate(units) if planted.get(int(u)) == cl["name"]]
        if not members:
            continue
        labels, counts = np.unique(np.asarray(recovered)[members], return_counts=True)
        best = int(labels[np.argmax(counts)])
        center_khz = float(np.mean(cl["band_hz"])) / 1e3
        # NaN when that cluster got no band (all its units called untuned, or labelled non-frequency)
        found = float(cluster_band.loc[cluster_band.cluster == best, "band_center_khz"].iloc[0])
        rows.append({"planted_cluster": cl["name"], "planted_center_khz": center_khz,
                     "recovered_cluster": best, "share_of_units": float(counts.max() / len(members)),
                     "recovered_center_khz": found, "error_khz": found - center_khz,
                     "within_tolerance": bool(abs(found - center_khz) <= tolerance_khz)})  # False if NaN
    return pd.DataFrame(rows)


def tuning_features(truth: dict) -> list[str]:
    """The planted syllable features some unit is tuned to (e.g. mean_freq_hz, duration_s), sorted."""
    return sorted({u["feature"] for u in truth["units"] if u.get("feature")})


def syllable_feature_matrix(syllables: list[dict | None], keys: list[str]) -> np.ndarray:
    """The planted values of ``keys`` for every syllable (N, K) (booleans as 0/1); NaN rows where a
    syllable has no planted match (``planted_syllables``' None)."""
    return np.array([[np.nan] * len(keys) if s is None else [float(s[k]) for k in keys] for s in syllables],
                    dtype=np.float64).reshape(len(syllables), len(keys))
