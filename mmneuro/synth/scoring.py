"""Scores of an analysis against the planted truth of demo data: syllable matching, segmentation F1,
cluster ARI, bands, the oracles (planted rates, planted features) and where the planted factors sit.

``truth`` arguments are ``ground_truth.json`` dicts (``mmneuro.synth.load_ground_truth``). The
scoring stage (``mmneuro score``, :func:`score_folder`) scores an analysis folder into a folder of
its own; in memory, ``mmneuro.analyse(model, ds, truth=...)`` calls :func:`score_analysis`. Nothing
else of the analysis knows demo data.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mmneuro.errors import InputError

from mmneuro.synth.units import planted_rate


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


def oracle_counts(units: list[dict], syllables: list[dict | None], onsets_s: np.ndarray,
                  window_s: tuple[np.ndarray, np.ndarray], tail_s: float) -> np.ndarray:
    """Expected counts under the planted rates (the oracle), (N, U); NaN rows where no planted syllable.

    units: ground-truth unit dicts in column order; syllables: the planted syllable of each row;
    onsets_s: detected onsets; window_s: (start, end) of each count window relative to the detected
    onset (s). The planted response is ``planted_rate - baseline`` on top of the baseline, from
    onset + latency to offset + latency + tail (mmneuro.synth), so
    E[count] = baseline * window + drive * |window ∩ response|.
    """
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


# ---- the analysis against the truth ------------------------------------------------------------------
def load_truths(truth) -> dict[str, dict]:
    """{session: ground_truth dict} from a dict of those, a list of truth dicts, or session folders
    holding ground_truth.json (an InputError names a missing or invalid file)."""
    from mmneuro.synth.session import load_ground_truth

    if isinstance(truth, dict):
        return dict(truth)
    truths = {}
    for item in truth:
        t = item if isinstance(item, dict) else load_ground_truth(item)
        truths[t["session"]] = t
    return truths


def truth_units(truths: dict[str, dict], units: np.ndarray) -> list[dict]:
    """The planted unit dicts in the dataset's unit order (units are shared by all sessions)."""
    by_id = {int(u["unit"]): u for u in next(iter(truths.values()))["units"]}
    missing = [int(u) for u in units if int(u) not in by_id]
    if missing:
        raise InputError("--truth", f"unit(s) {missing[:5]} of the dataset are not in the ground truth")
    return [by_id[int(u)] for u in units]


def oracle_images(part, train, truths: dict[str, dict], tolerance_s: float, seed: int) -> np.ndarray:
    """Neural -> audio oracle for ``part``'s syllables (N, F, T): E[image | the planted features some
    unit is tuned to], fitted on ``train`` (crosspred.tree_images; NaN for syllables with no match)."""
    from mmneuro.analysis.crosspred import tree_images

    keys = tuning_features(next(iter(truths.values())))

    def features(d):
        planted = planted_syllables(d["session"].values, d["onset_s"].values, truths, tolerance_s)
        return syllable_feature_matrix(planted, keys)

    train_images = train["spectrogram"].transpose("syllable", "freq", "time").values
    return tree_images(features(train), train_images, features(part), seed=seed)


def score_analysis(result, truth) -> None:
    """Score an ``AnalysisResult`` (mmneuro.analysis) against the planted ``truth`` (see
    :func:`load_truths`), in place: the oracle rows of ``result.crosspred`` (audio -> neural: the
    planted rates; neural -> audio: the planted features), ``result.scores`` (scores.json) and the
    planted-factor probes ``result.factors["planted_probes"]``; the oracles join ``result``'s figures."""
    ctx = result.context
    scored = truth_scores(ctx.model, ctx.ds, ctx.data, ctx.both, ctx.x_all, result.embeddings,
                          ctx.clusters["labels"], result.cluster_band, result.crosspred, result.synergy,
                          load_truths(truth), result.settings)
    ctx.cross["predictions"]["oracle (planted rate)"] = scored["oracle_counts"]
    ctx.cross["images"]["oracle (planted features)"] = scored["oracle_images"]
    result.crosspred = ctx.cross["table"] = scored["crosspred"]
    result.scores = scored["scores"]
    if scored["planted_probes"] is not None:
        result.factors["planted_probes"] = scored["planted_probes"]


def truth_scores(model, ds, data, both, x_all: dict, embeddings, labels: np.ndarray, cluster_band: pd.DataFrame,
                 crosspred_table: pd.DataFrame, synergy: pd.DataFrame, truths: dict[str, dict], settings,
                 images: np.ndarray | None = None) -> dict:
    """Everything scoring adds to one model's analysis, from the analysis' own pieces: ``data`` (the
    analysed and training splits, mmneuro.analysis.pipeline.Data), ``both`` and ``x_all`` (the syllables
    with both modalities and their model inputs), the embeddings, the units' cluster labels, the
    cluster_band, crosspred (without oracle rows) and synergy tables, and ``truths`` ({session: truth}).
    ``images``: the planted-feature oracle of ``data.ds`` if already fitted (:func:`read_oracle`; it
    does not depend on the model), else fitted here.

    Returns {"oracle_counts" (N, U), "oracle_images" (N, F, T), "oracle_rows" (crosspred.csv rows of
    the oracles), "crosspred" (the table with them), "scores" (scores.json), "planted_probes"
    (factors_planted_probes.csv, or None without a joint conditioning)}."""
    from mmneuro.analysis import crosspred

    s = settings
    units = data.ds["unit"].values
    planted = planted_syllables(data.ds["session"].values, data.ds["onset_s"].values, truths, s.match_tolerance_s)
    tail = float(next(iter(truths.values())).get("response_tail_s", 0.0))
    counts = oracle_counts(truth_units(truths, units), planted, data.ds["onset_s"].values, data.window_s, tail)
    if images is None:
        images = oracle_images(data.ds, data.train, truths, s.match_tolerance_s, s.seed)
    actual = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
    rows = pd.concat([crosspred.score_table(data.counts, {"oracle (planted rate)": counts}, units),
                      crosspred.image_error_rows(actual, {"oracle (planted features)": images})], ignore_index=True)
    table = with_oracle_rows(crosspred_table, rows)
    scores = _scores(ds, units, labels, cluster_band, table, synergy, truths, s)
    factors = _planted_factors(model, both, x_all, embeddings, truths, s)
    if factors:
        scores["factorisation"] = factors["scores"]
    return {"oracle_counts": counts, "oracle_images": images, "oracle_rows": rows, "crosspred": table,
            "scores": scores, "planted_probes": factors["probes"] if factors else None}


def with_oracle_rows(table: pd.DataFrame, oracle: pd.DataFrame) -> pd.DataFrame:
    """The crosspred table with the oracle rows in place: each direction's oracle after that direction's
    methods (audio -> neural first, then the image rows)."""
    a2n, o_a2n = table["direction"] == "audio->neural", oracle["direction"] == "audio->neural"
    return pd.concat([table[a2n], oracle[o_a2n], table[~a2n], oracle[~o_a2n]], ignore_index=True)


# ---- the scoring stage: an analysis folder + the truth -> a scores folder ------------------------------
SCORE_FILES = ("scores.json", "crosspred_oracle.csv", "factors_planted_probes.csv")


def score_folder(model_dir, dataset_path, analysis_dir, truth_dirs, out_dir, *, overrides: dict | None = None,
                 oracle_dir=None, session: str | None = None, progress: bool = True) -> Path:
    """Score the analysis in ``analysis_dir`` (``mmneuro analyse`` of the model in ``model_dir`` on
    ``dataset_path``) against the ground_truth.json of the session folders ``truth_dirs``, with the
    analysis' own settings (its summary.json; ``overrides``: ``--set`` strings on top). ``oracle_dir``:
    the planted-feature oracle of this dataset and truth from :func:`oracle_folder` (fitted here if None).
    ``session``: score one session's analysis of a model trained on sessions sorted on their own
    (``analysis_dir``: its ``sessions/<session>`` folder; docs/multisession.md): the model and the
    dataset are that session's (mmneuro.analysis.multisession.session_model, session_view).

    Writes ``out_dir`` (built beside it and renamed into place): scores.json, crosspred_oracle.csv
    (the oracle rows of crosspred.csv) and, with a joint conditioning, factors_planted_probes.csv.
    Returns ``out_dir``."""
    import json
    import time

    from mmneuro.analysis.pipeline import _both_modalities, analysis_data
    from mmneuro.analysis.result import _json_default
    from mmneuro.inputs import model_inputs
    from mmneuro.io import atomic_path, read_netcdf
    from mmneuro.models import load_model

    started = time.perf_counter()
    truths = load_truths(truth_dirs)  # read first: a bad folder fails at once
    if not truths:
        raise InputError("--truth", "no session folder with ground_truth.json given")
    analysis_dir, where = Path(analysis_dir), str(dataset_path)
    settings = analysis_settings(analysis_dir).replace(overrides or {})
    tables = _analysis_tables(analysis_dir)
    model = load_model(model_dir)
    ds = read_netcdf(dataset_path)
    if session is not None:
        model, ds = _one_session(model, ds, session, where)
    both = _both_modalities(ds)
    data = analysis_data(ds, model, settings, where)
    images = read_oracle(oracle_dir, data.ds, settings) if oracle_dir is not None else None
    scored = truth_scores(model, ds, data, both, model_inputs(both, model, where),
                          tables["embeddings"], tables["clusters"]["cluster"].to_numpy(), tables["cluster_band"],
                          tables["crosspred"], tables["synergy"], truths, settings, images)
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / "scores.json").write_text(json.dumps(scored["scores"], indent=1, default=_json_default) + "\n")
        scored["oracle_rows"].to_csv(tmp / "crosspred_oracle.csv", index=False)
        if scored["planted_probes"] is not None:
            scored["planted_probes"].to_csv(tmp / "factors_planted_probes.csv", index=False)
        if out_dir.exists():
            shutil.rmtree(out_dir)
    if progress:
        print(f"score: done in {time.perf_counter() - started:.0f} s -> {out_dir}", file=sys.stderr, flush=True)
    return out_dir


def _one_session(model, ds, session: str, where: str):
    """The model and dataset of one session sorted on its own: its read-in/read-out and its units."""
    from mmneuro.analysis.multisession import session_model, session_view
    from mmneuro.dataset import recorded_units

    units = recorded_units(ds)
    if not len(units.get(session, ())):
        raise InputError(where, f"no session {session!r} with units of its own (sessions with units: "
                                f"{', '.join(s for s, u in units.items() if len(u)) or 'none'})")
    return session_model(model, units[session]), session_view(ds, session)


# ---- the oracle stage: what scoring needs of the truth alone, once per dataset (not once per model) -------
ORACLE_FILE = "oracle_images.nc"
ORACLE_SETTINGS = ("split", "seed", "match_tolerance_s")  # the analysis settings the oracle depends on


def oracle_folder(dataset_path, truth_dirs, out_dir, *, overrides: dict | None = None, progress: bool = True) -> Path:
    """The planted-feature oracle (:func:`oracle_images`) of the analysed split of ``dataset_path``,
    fitted on its training split with the ground_truth.json of ``truth_dirs``: it depends on no model,
    so the workflow fits it once (rule ``oracle``) and every ``mmneuro score --oracle`` reads it.
    ``overrides``: analysis settings (``--set`` strings); only ``ORACLE_SETTINGS`` matter.

    Writes ``out_dir`` (renamed into place) holding oracle_images.nc: ``images`` (syllable, freq, time),
    NaN for syllables with no planted match, and the settings it was fitted with as attributes."""
    import time

    import xarray as xr

    from mmneuro.analysis.pipeline import splits
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import atomic_path, read_netcdf, write_netcdf

    started = time.perf_counter()
    truths = load_truths(truth_dirs)
    if not truths:
        raise InputError("--truth", "no session folder with ground_truth.json given")
    settings = AnalysisSettings().replace(overrides or {})
    part, train = splits(read_netcdf(dataset_path), settings, str(dataset_path))
    images = oracle_images(part, train, truths, settings.match_tolerance_s, settings.seed)
    oracle = xr.Dataset({"images": (("syllable", "freq", "time"), images)}, coords={"syllable": part["syllable"].values},
                        attrs={k: getattr(settings, k) for k in ORACLE_SETTINGS}
                        | {"description": "planted-feature oracle E[image | planted features] (mmneuro.synth.scoring)"})
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_netcdf(oracle, tmp / ORACLE_FILE)
        if out_dir.exists():
            shutil.rmtree(out_dir)
    if progress:
        print(f"oracle: done in {time.perf_counter() - started:.0f} s -> {out_dir}", file=sys.stderr, flush=True)
    return out_dir


def read_oracle(oracle_dir, part, settings) -> np.ndarray:
    """The oracle images (N, F, T) of :func:`oracle_folder` for ``part``'s syllables; an InputError if the
    file is missing or was fitted with other settings or on other syllables."""
    from mmneuro.io import read_netcdf

    path = Path(oracle_dir) / ORACLE_FILE
    oracle = read_netcdf(path)
    differ = [f"{k} {oracle.attrs.get(k)} (analysis: {getattr(settings, k)})" for k in ORACLE_SETTINGS
              if oracle.attrs.get(k) != getattr(settings, k)]
    if differ:
        raise InputError(path, "fitted with other settings: " + ", ".join(differ))
    if not np.isin(part["syllable"].values, oracle["syllable"].values).all():
        raise InputError(path, "fitted on other syllables than the analysed split of this dataset")
    return oracle["images"].sel(syllable=part["syllable"].values).values  # one session's: a subset


def analysis_settings(analysis_dir: Path):
    """The AnalysisSettings an analysis folder was made with (its summary.json)."""
    import json

    from mmneuro.analysis.settings import AnalysisSettings

    summary = Path(analysis_dir) / "summary.json"
    if not summary.is_file():
        raise InputError(summary, "file not found: not an analysis folder from `mmneuro analyse`")
    try:
        values = json.loads(summary.read_text())["settings"]
        return AnalysisSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(summary, f"no readable analysis settings ({err})") from None


def _analysis_tables(analysis_dir: Path) -> dict:
    """The tables of an analysis folder that scoring reads (floats exactly as written: CSV round-trips)."""
    from mmneuro.io import read_netcdf

    def csv(name, **kw):
        path = analysis_dir / f"{name}.csv"
        if not path.is_file():
            raise InputError(path, "file not found: not an analysis folder from `mmneuro analyse`")
        if path.stat().st_size <= 1:  # an empty table (synergy of a one-modality model)
            return pd.DataFrame()
        # .copy() consolidates the float columns into one block, as in the analysis' own table: pandas'
        # grouped means over separate columns can differ in the last bit (scores.json would change)
        return pd.read_csv(path, **kw).copy()

    out = {"embeddings": read_netcdf(analysis_dir / "embeddings.nc"), "clusters": csv("clusters"),
           "cluster_band": csv("cluster_band", keep_default_na=False, na_values=[""]), "crosspred": csv("crosspred"),
           "synergy": csv("synergy")}
    if out["crosspred"]["method"].str.startswith("oracle").any():
        raise InputError(analysis_dir / "crosspred.csv", "already holds oracle rows (analysed with a truth): "
                                                         "analyse it without --truth, then score it")
    return out


def _scores(ds, units, labels, cluster_band, cross_table, syn, truths, settings) -> dict:
    from mmneuro.analysis import crosspred

    first = next(iter(truths.values()))
    seg = {}
    for session, truth in truths.items():
        detected = ds["onset_s"].values[ds["session"].values == session]
        seg[session] = segmentation_scores(detected, np.array([s_["onset_s"] for s_ in truth["syllables"]]),
                                           settings.match_tolerance_s)
    rec = band_recovery(units, labels, cluster_band, first)
    summ = crosspred.summary(cross_table)
    audio_neural = summ[summ.direction == "audio->neural"].set_index("method")["pearson_r"]
    model_r = audio_neural.get("model (audio->neural)", np.nan)
    oracle_r = audio_neural.get("oracle (planted rate)", np.nan)
    targets = {
        "ari_at_least_0.9": None,
        "bands_within_2_khz": bool(rec["within_tolerance"].all()) if len(rec) else None,
        "model_beats_ridge_and_mean_rate": bool(model_r > audio_neural.get("ridge (spectrogram PCA)", np.inf)
                                                and model_r > audio_neural.get("mean_rate", np.inf)),
        "model_reaches_80pct_of_oracle": bool(model_r >= 0.8 * oracle_r),
        "synergy_ordered": {r["target"]: r["ordered"] for r in syn.to_dict("records")} if len(syn) else None,
    }
    agreement = cluster_agreement(units, labels, first)
    targets["ari_at_least_0.9"] = agreement["ari"] >= 0.9
    untuned = untuned_recovery(units, labels, first)
    targets["untuned_recall_0.9_false_flags_0.05"] = bool(
        not untuned["untuned_recall"] < 0.9 and not untuned["false_flag_rate"] > 0.05)
    return {
        "clusters": {**agreement, **untuned},
        "band_recovery": rec.to_dict("records"),
        "segmentation": seg,
        "crosspred_mean_pearson_r": {k: float(v) for k, v in audio_neural.items()},
        "model_over_oracle_r": float(model_r / oracle_r) if oracle_r else None,
        "targets": targets,
    }


def _planted_factors(model, both, x_all: dict, emb, truths: dict, settings) -> dict:
    """Where the planted audio-only, shared and neural-only factors sit in the latent parts (probes of
    the joint posterior means of every syllable with both modalities), and whether cross generation
    copies a source-only factor into the other modality. {} without a joint conditioning."""
    from mmneuro.analysis import embed, factors

    if "joint" not in emb["conditioning"].values:
        return {}
    planted = planted_factors(both["session"].values, both["onset_s"].values, truths, settings.match_tolerance_s)
    parts = factors.latent_parts(model)
    z = emb["mean"].sel(conditioning="joint").values
    probes = factors.planted_probes(z, planted, parts, PLANTED_FACTORS)
    leaks = {}
    if {"audio", "neural"} <= set(model.modalities):
        rates = embed.cross_generate(model, x_all, "audio", "neural", settings.batch_size)
        images = embed.cross_generate(model, x_all, "neural", "audio", settings.batch_size)
        leaks = {"log_amplitude in audio->neural": factors.leak_probe(rates, planted["log_amplitude"], log=True),
                 "slow_drift in neural->audio": factors.leak_probe(images, planted["slow_drift"])}
        leaks = {k: v for k, v in leaks.items() if np.isfinite(v)}
    by_factor = {f: dict(zip(g["part"], g["r2"])) for f, g in probes.groupby("factor")} if len(probes) else {}
    return {"probes": probes,
            "scores": {"probes_r2": by_factor, "expected_part": PLANTED_FACTORS,
                       "cross_generation_leak_r2": leaks,
                       "targets": factors.factorisation_targets(probes, parts)}}
