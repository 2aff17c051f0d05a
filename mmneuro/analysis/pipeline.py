"""``analyse``: one trained model + a dataset (+ demo ground truth) -> an :class:`AnalysisResult`;
``analyse_folder``: the same from and to files (the CLI and the workflow).

``analyse(model, ds)`` writes nothing; ``result.write(folder)`` writes the analysis folder
(mmneuro.analysis.result). Ground truth is scored only when given, by mmneuro.synth.scoring.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.analysis import bands, crosspred, embed, factors, neurons, synergy
from mmneuro.analysis.result import AnalysisResult, Context
from mmneuro.analysis.settings import AnalysisSettings
from mmneuro.errors import InputError
from mmneuro.inputs import SPIKE_WINDOWS, latency_s, model_inputs, window_counts


@dataclass
class Data:
    """The syllables an analysis uses: the held-out part and the training part, as model inputs."""

    ds: xr.Dataset  # the analysed split (both modalities present)
    train: xr.Dataset
    x: dict[str, np.ndarray]
    x_train: dict[str, np.ndarray]
    counts: np.ndarray  # (N, U) spikes per window, the neural modality summed over bins
    exposure_s: np.ndarray  # (N,) window length
    window_s: tuple[np.ndarray, np.ndarray]  # window start/end relative to onset (s)
    train_counts: np.ndarray
    train_exposure_s: np.ndarray
    neural_input: str  # the window counts are taken over: "counts" (onset window) or "total_counts"


def analyse(model, ds: xr.Dataset, *, settings: AnalysisSettings | None = None, truth=None, progress: bool = True,
            model_dir=None, where: str = "dataset") -> AnalysisResult:
    """Every analysis of one trained model on a dataset (the dataset.nc layout); writes nothing.

    model: a MultimodalVAE (``mmneuro.models.load_model``) or an estimator holding one as ``model_``.
    truth: demo ground truth to score against ({session: ground_truth dict}, a list of those, or
    session folders with ground_truth.json); adds ``scores`` and the oracle rows of ``crosspred``.
    model_dir: the model's folder, if any (summary.json names it; its metrics.csv gives the training
    curves figure). where: names ``ds`` in error messages.
    """
    import torch

    if isinstance(model, (str, Path)):  # the old signature took folders
        raise TypeError("analyse(model, ds) takes a model object and a Dataset; for folders use "
                        "analyse_folder(model_dir, dataset_path, out_dir)")
    model = getattr(model, "model_", model)
    if "unit_session" in ds.coords:
        raise InputError(where, "its sessions were spike-sorted separately (units: own): analyse each "
                                "session with mmneuro.analysis.multisession.analyse_sessions")
    model_dir = Path(model_dir) if model_dir is not None else None
    settings = settings or AnalysisSettings()
    settings.check()
    torch.manual_seed(settings.seed)
    started = time.perf_counter()
    data = analysis_data(ds, model, settings, where)
    log = _logger(progress)
    both = _both_modalities(ds)

    log("embeddings")
    x_all = model_inputs(both, model, where)
    emb = embed.embeddings(model, both, x_all, settings.batch_size)
    emb_split = emb.sel(syllable=data.ds["syllable"].values)
    z = emb_split["mean"].sel(conditioning=settings.conditioning).values

    log("tuning test")
    tuning = unit_tuning(both, settings)
    log("latent <-> neuron correlations")
    lat_neu, profiles = _latent_neuron(z, data, settings, progress)
    clusters = cluster_units(tuning["profiles"] if settings.cluster_on == "tuning" else profiles, tuning["tuned"], settings)
    defining = neurons.defining_latents(profiles, clusters["labels"], settings.defining_latents)

    log("bands and traversals")
    band_tables = _bands(model, data, both, z, clusters["labels"], defining, settings)

    log("synergy")
    syn, predictive = _synergy(model, data, settings, progress)

    log("cross-prediction")
    cross = _crosspred(model, data, settings, predictive)

    units = data.ds["unit"].values
    cluster_table = _cluster_table(units, clusters, tuning, defining, band_tables["cluster_band"])
    summary = _summary(ds, data, model, model_dir, settings, clusters, cross)
    factor = _factors(model, data, settings)
    result = AnalysisResult(
        embeddings=emb, latent_neuron=lat_neu, clusters=cluster_table, latent_band=band_tables["latent_band"],
        cluster_band=band_tables["cluster_band"], crosspred=cross["table"], synergy=syn,
        factors=dict(factor.get("tables", {})), summary=summary, settings=settings,
        context=Context(model=model, model_dir=model_dir, ds=ds, both=both, x_all=x_all, data=data,
                        emb_split=emb_split, clusters=clusters, traversal=band_tables["traversal"], cross=cross,
                        factor_z=factor.get("z")))
    if truth is not None and len(truth):
        log("scores against the planted truth")
        from mmneuro.synth.scoring import score_analysis  # demo data only

        score_analysis(result, truth)
    result.runtime_s = time.perf_counter() - started
    return result


def analyse_folder(model_dir, dataset_path, out_dir, *, truth_dirs=(), settings: AnalysisSettings | None = None,
                   progress: bool = True) -> Path:
    """:func:`analyse` of the model in ``model_dir`` on ``dataset_path`` (dataset.nc), written to
    ``out_dir`` (AnalysisResult.write); ``truth_dirs``: demo session folders with ground_truth.json.
    Returns ``out_dir``."""
    from mmneuro.io import read_netcdf
    from mmneuro.models import load_model

    started = time.perf_counter()
    model = load_model(model_dir)
    ds = read_netcdf(dataset_path)
    truths = None
    if truth_dirs:
        from mmneuro.synth.scoring import load_truths  # read before the analysis: a bad folder fails at once

        truths = load_truths(truth_dirs)
    log = _logger(progress)
    if "unit_session" in ds.coords:  # sessions sorted separately: one analysis per session
        from mmneuro.analysis.multisession import write_sessions

        out_dir = write_sessions(model, ds, out_dir, settings=settings, truth=truths, progress=progress,
                                 model_dir=model_dir, where=str(dataset_path))
        log(f"done in {time.perf_counter() - started:.0f} s -> {out_dir}")
        return out_dir
    result = analyse(model, ds, settings=settings, truth=truths, progress=progress, model_dir=model_dir,
                     where=str(dataset_path))
    log("figures")
    out_dir = result.write(out_dir)
    log(f"done in {time.perf_counter() - started:.0f} s -> {out_dir}")
    return out_dir


def _factors(model, data: Data, settings: AnalysisSettings) -> dict:
    """Shared/private tables and the joint posterior means, only for a factorised model."""
    if len(factors.latent_parts(model)) < 2:
        return {}
    z, _ = embed.posterior_moments(model, data.x, tuple(model.modalities), settings.batch_size)
    tables = factors.factor_tables(model, data.x, data.ds, band_width_hz=settings.band_width_hz, z=z)
    return {"tables": tables, "z": z}


def _logger(enabled: bool):
    def log(message: str) -> None:
        if enabled:
            print(f"analyse: {message}", file=sys.stderr, flush=True)

    return log


def _both_modalities(ds: xr.Dataset) -> xr.Dataset:
    keep = np.ones(ds.sizes["syllable"], bool)
    for flag in ("has_audio", "has_neural"):
        if flag in ds.coords:
            keep &= ds[flag].values.astype(bool)
    return ds.isel(syllable=keep)


def analysis_data(ds: xr.Dataset, model, settings: AnalysisSettings | None = None, where: str = "dataset") -> Data:
    """The syllables :func:`analyse` scores ``model`` on: the analysed split (``settings.split``) and
    the training split of ``ds``, with their model inputs and spike counts per window (an InputError
    naming ``where`` as :func:`splits`)."""
    settings = settings or AnalysisSettings()
    part, train = splits(ds, settings, where)
    x, x_train = model_inputs(part, model, where), model_inputs(train, model, where)
    binned = "neural" in model.modalities and len(model.experts["neural"].shape) == 2
    neural_input, latency = "counts" if binned else "total_counts", latency_s(ds)
    c, e, w = window_counts(part, neural_input, latency)
    ct, et, _ = window_counts(train, neural_input, latency)
    return Data(part, train, x, x_train, c, e, w, ct, et, neural_input)


def splits(ds: xr.Dataset, settings: AnalysisSettings, where: str) -> tuple[xr.Dataset, xr.Dataset]:
    """The analysed split (``settings.split``) and the training split of the syllables with both
    modalities; an InputError naming ``where`` if dataset.nc lacks a variable or either has < 10."""
    for var in ("spectrogram", "total_counts", "counts", "split"):
        if var not in ds.variables:
            raise InputError(where, f"no variable {var!r}: not a dataset.nc from `mmneuro dataset`")
    both = _both_modalities(ds)
    split = both["split"].values
    part = both if settings.split == "all" else both.isel(syllable=split == settings.split)
    train = both.isel(syllable=split == "train")
    if part.sizes["syllable"] < 10 or train.sizes["syllable"] < 10:
        raise InputError(where, f"too few syllables with both modalities ({part.sizes['syllable']} in split "
                                f"{settings.split!r}, {train.sizes['syllable']} in train; need 10 each)")
    return part, train


def _latent_neuron(z: np.ndarray, data: Data, settings: AnalysisSettings, progress: bool):
    """Correlations (Pearson, Spearman) with shuffle p and BH q (over every latent x unit per method),
    plus the encoding model's scores; returns the Dataset and the Pearson profiles (unit, latent)."""
    rates = data.counts / data.exposure_s[:, None]
    order = np.lexsort((data.ds["onset_s"].values, data.ds["session"].values))
    groups = data.ds["session"].values[order]
    methods = ("pearson", "spearman")
    r, p = zip(*(neurons.shuffle_null_pvalues(z[order], rates[order], method=m, null=settings.null,
                                              n_permutations=settings.n_permutations, groups=groups,
                                              seed=settings.seed, progress=progress) for m in methods))
    q = [neurons.fdr_bh(pm) for pm in p]
    enc = neurons.encoding_model(z, data.counts, data.exposure_s, kind=settings.encoding,
                                 alpha=settings.encoding_alpha, folds=settings.cv_folds, seed=settings.seed,
                                 progress=progress)
    coords = {"correlation": list(methods), "latent": np.arange(z.shape[1]), "unit": data.ds["unit"].values}
    dims = ("correlation", "latent", "unit")
    out = xr.Dataset(
        {"r": (dims, np.stack(r)), "p": (dims, np.stack(p)), "q": (dims, np.stack(q)),
         "significant": (dims, (np.stack(q) <= settings.fdr_q).astype(np.int8)),
         "encoding_deviance_explained": ("unit", enc["deviance_explained"]),
         "encoding_r2": ("unit", enc["r2"]),
         "mean_rate_hz": ("unit", rates.mean(axis=0))},
        coords=coords,
        attrs={"null": settings.null, "n_permutations": settings.n_permutations, "fdr_q": settings.fdr_q,
               "conditioning": settings.conditioning, "split": settings.split, "encoding": settings.encoding,
               "n_syllables": len(z),
               "description": "correlation of posterior-mean latents with each unit's rate (spikes/s) "
                              "over held-out syllables; p from a shuffle null, q Benjamini-Hochberg"},
    )
    return out, np.stack(r)[0].T


def unit_tuning(both: xr.Dataset, settings: AnalysisSettings) -> dict:
    """The per-unit tuning test (neurons.tuning_test) on every syllable with both modalities: total
    counts onset -> offset + latency, so it depends on no model and no split; BH q over units; and
    the units' tuning curves (neurons.tuning_profiles) from the same counts."""
    from scipy.stats import false_discovery_control

    order = np.lexsort((both["onset_s"].values, both["session"].values))
    ds = both.isel(syllable=order)
    counts, exposure, _ = window_counts(ds, "total_counts", latency_s(both))
    features = _features(ds, TUNING_FEATURES)
    if not features:
        raise InputError("dataset.nc", f"no finite syllable feature among {', '.join(TUNING_FEATURES)} to test "
                                       "tuning against")
    out = neurons.tuning_test(counts, exposure, features, groups=ds["session"].values,
                              n_shifts=settings.tuning_shifts, n_bins=settings.tuning_bins, seed=settings.seed)
    out["q"] = false_discovery_control(out["p"], method="bh")
    out["tuned"] = out["q"] <= settings.fdr_q
    out["profiles"] = neurons.tuning_profiles(counts, exposure, features, settings.profile_bins)
    return out


def cluster_units(profiles: np.ndarray, tuned: np.ndarray, settings: AnalysisSettings) -> dict:
    """Clusters of the tuned units' profiles (U, P) (tuning curves or latent correlations); untuned units
    get label -1 and no cluster."""
    fit = neurons.cluster_profiles(profiles[tuned], n_clusters=settings.n_clusters,
                                   max_clusters=settings.max_clusters)
    labels = np.full(len(profiles), -1)
    labels[tuned] = fit["labels"]
    return {**fit, "labels": labels, "k": int(fit["k"]) if tuned.any() else 0}


TUNING_FEATURES = (*bands.FEATURES, "amplitude_db")  # what the audio stage measures per syllable


def _features(ds: xr.Dataset, names=bands.FEATURES) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        if name == "duration_s" and name not in ds.coords and "offset_s" in ds.coords:
            out[name] = ds["offset_s"].values - ds["onset_s"].values
        elif name in ds.coords:
            out[name] = ds[name].values.astype(np.float64)
    return {k: v for k, v in out.items() if np.isfinite(v).all()}


def _bands(model, data: Data, both: xr.Dataset, z: np.ndarray, labels: np.ndarray, defining,
           settings: AnalysisSettings) -> dict:
    s = settings
    freq_hz = data.ds["freq_hz"].values
    edges = bands.band_edges_hz(s.band_min_hz, s.band_max_hz, s.band_width_hz)
    centers = (edges[:-1] + edges[1:]) / 2
    energies = bands.band_energy(data.ds["spectrogram"].transpose("syllable", "freq", "time").values, freq_hz, edges)
    features = _features(data.ds)
    traversal = None
    if "audio" in model.modalities:
        traversal = bands.traversal_frequencies(
            embed.decoder_mean(model, "audio", s.batch_size), embed.typical_latent(z), z.std(0), sd_range=s.traversal_sd,
            steps=s.traversal_steps, freq_hz=freq_hz, lo_hz=s.band_min_hz, hi_hz=s.band_max_hz)
    latent_band = bands.latent_band_table(z, energies, centers, features, traversal)
    cluster_band = cluster_bands(both, labels, settings, defining, latent_band)
    return {"latent_band": latent_band, "cluster_band": cluster_band, "traversal": traversal}


def cluster_bands(both: xr.Dataset, labels: np.ndarray, settings: AnalysisSettings, defining=None,
                  latent_band: pd.DataFrame | None = None) -> pd.DataFrame:
    """bands.cluster_band_table from the raw rates of every syllable with both modalities (no model
    involved, so no need to hold syllables out; more syllables resolve narrow tuning)."""
    s = settings
    edges = bands.band_edges_hz(s.band_min_hz, s.band_max_hz, s.band_width_hz)
    counts, exposure, _ = window_counts(both, "total_counts", latency_s(both))
    energies = bands.band_energy(both["spectrogram"].transpose("syllable", "freq", "time").values,
                                 both["freq_hz"].values, edges)
    return bands.cluster_band_table(counts / exposure[:, None], labels, energies, (edges[:-1] + edges[1:]) / 2,
                                    _features(both, TUNING_FEATURES), defining or {}, latent_band)


def _crosspred(model, data: Data, settings: AnalysisSettings, predictive: dict | None = None) -> dict:
    """audio -> neural per unit (model and baselines) and neural -> audio image error (the oracles of
    demo data: mmneuro.synth.scoring.score_analysis); ``bits_per_spike``: audio -> neural bits per
    spike of all units together per method (crosspred.overall_table). ``predictive``: the predictive
    means of :func:`_synergy` ({("audio", src): images}) where it drew them on these syllables."""
    s = settings
    images = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
    train_images = data.train["spectrogram"].transpose("syllable", "freq", "time").values
    preds, binned = {}, {}  # binned: predictions per bin (N, U, B) of models trained on binned counts
    if {"audio", "neural"} <= set(model.modalities):
        out = embed.cross_generate(model, data.x, "audio", "neural", s.batch_size)
        preds["model (audio->neural)"] = out.reshape(len(out), out.shape[1], -1).sum(-1)
        if out.ndim == 3:
            binned["model (audio->neural)"] = out
    preds["mean_rate"] = crosspred.mean_rate_baseline(data.train_counts, data.train_exposure_s, data.exposure_s)
    preds["ridge (spectrogram PCA)"] = crosspred.ridge_baseline(
        train_images, data.train_counts, images, n_components=s.pca_components, alphas=s.ridge_alphas, seed=s.seed)
    table = crosspred.score_table(data.counts, preds, data.ds["unit"].values)
    images_pred = {}
    if {"audio", "neural"} <= set(model.modalities):
        for src in ("neural", "audio"):
            shared = (predictive or {}).get(("audio", src))
            images_pred[f"model ({src}->audio)"] = shared[:, 0] if shared is not None else embed.cross_generate(
                model, data.x, src, "audio", s.batch_size, samples=s.predictive_samples, seed=s.seed)
    images_pred |= image_baselines(data.ds, data.train, settings)
    table = pd.concat([table, crosspred.image_error_rows(images, images_pred)], ignore_index=True)
    # neural -> neural: the model's reconstruction of the counts from the spikes alone, scored like
    # audio -> neural (rows after the existing ones, which stay as they were)
    recon = {}
    if "neural" in model.modalities:
        out = embed.cross_generate(model, data.x, "neural", "neural", s.batch_size)
        recon["model (neural->neural)"] = out.reshape(len(out), out.shape[1], -1).sum(-1)
        if out.ndim == 3:
            binned["model (neural->neural)"] = out
        table = pd.concat([table, crosspred.score_table(data.counts, recon, data.ds["unit"].values, "neural->neural")],
                          ignore_index=True)
    psth = _psth_r2(data, binned, s)
    table["psth_r2"] = [psth.get(m, {}).get(u, np.nan) for m, u in zip(table["method"], table["unit"])]
    return {"table": table, "predictions": preds, "images": images_pred,
            "bits_per_spike": crosspred.overall_table(data.counts, preds | recon),
            "psth_r2": {m: crosspred.finite_mean(list(v.values())) for m, v in psth.items()}}


def _psth_r2(data: Data, binned: dict[str, np.ndarray], settings: AnalysisSettings) -> dict[str, dict[int, float]]:
    """{method: {unit: PSTH R²}} of the binned predictions (crosspred.psth_r2), the syllables grouped
    into ``psth_groups`` quantile bins of ``psth_feature`` ({} without binned predictions or the feature)."""
    feature = data.ds[settings.psth_feature].values.astype(np.float64) if settings.psth_feature in data.ds.coords else None
    if not binned or feature is None or not np.isfinite(feature).any():
        return {}
    ok = np.isfinite(feature)
    groups = np.full(len(feature), -1)
    groups[ok] = neurons.quantile_bins(feature[ok], settings.psth_groups)
    actual = data.ds["counts"].transpose("syllable", "unit", "bin").values.astype(np.float64)
    units = data.ds["unit"].values.astype(int)
    return {m: dict(zip(units, crosspred.psth_r2(actual, pred, groups))) for m, pred in binned.items()}


def image_baselines(part: xr.Dataset, train: xr.Dataset, settings: AnalysisSettings, truths: dict | None = None) -> dict:
    """Neural -> audio baselines for ``part``'s syllables, fitted on ``train`` (no model involved):
    the mean training spectrogram; ridge from each unit's total counts (crosspred.ridge_images); and
    with ground truth, the planted-feature oracle E[image | the planted features some unit is tuned
    to] (crosspred.tree_images; NaN for syllables with no planted match). Images (N, F, T)."""
    s = settings

    def images(d):
        return d["spectrogram"].transpose("syllable", "freq", "time").values

    def counts(d):
        return d["total_counts"].transpose("syllable", "unit").values.astype(np.float64)

    train_images = images(train)
    out = {"mean spectrogram": np.broadcast_to(train_images.mean(0), (part.sizes["syllable"], *train_images.shape[1:])),
           "ridge (neural counts)": crosspred.ridge_images(counts(train), train_images, counts(part),
                                                           n_components=s.pca_components, alphas=s.ridge_alphas,
                                                           seed=s.seed)}
    if truths:
        from mmneuro.synth.scoring import oracle_images

        out["oracle (planted features)"] = oracle_images(part, train, truths, s.match_tolerance_s, s.seed)
    return out


def _synergy(model, data: Data, settings: AnalysisSettings, progress: bool) -> tuple[pd.DataFrame, dict]:
    """The synergy table and, where it covers every syllable and draws at least ``predictive_samples``
    per syllable, the predictive means of cross-generation from the same decoder passes (about a third
    of the audio decodes of an analysis fewer; synergy.synergy_table)."""
    if not {"audio", "neural"} <= set(model.modalities):
        return pd.DataFrame(), {}
    n = min(settings.synergy_max_syllables, len(data.counts))
    rows = np.random.default_rng(settings.seed).choice(len(data.counts), n, replace=False)
    x = {m: v[np.sort(rows)] for m, v in data.x.items()}
    shares = n == len(data.counts) and 0 < settings.predictive_samples <= settings.synergy_k
    table, means = synergy.synergy_table(model, x, k=settings.synergy_k, seed=settings.seed, progress=progress,
                                         mean_draws=settings.predictive_samples if shares else 0)
    table.insert(0, "model", model.config.kind)
    return table, means


def _cluster_table(units, clusters: dict, tuning: dict, defining, cluster_band: pd.DataFrame) -> pd.DataFrame:
    by_cluster = cluster_band.set_index("cluster")
    labels = clusters["labels"]
    return pd.DataFrame({
        "unit": units.astype(int), "cluster": labels, "tuned": tuning["tuned"],
        "p_value": tuning["p"], "q_value": tuning["q"], "tuning_feature": tuning["feature"],
        "cluster_label": [by_cluster.loc[int(c), "label"] for c in labels],
        "defining_latents": ["; ".join(f"z{d} ({r:+.2f})" for d, r in defining.get(int(c), [])) if c >= 0 else ""
                             for c in labels],
        "cluster_band_center_khz": [by_cluster.loc[int(c), "band_center_khz"] for c in labels],
    })


def _summary(ds, data: Data, model, model_dir, settings, clusters, cross: dict) -> dict:
    sessions = json.loads(ds.attrs["sessions"]) if isinstance(ds.attrs.get("sessions"), str) else []
    return {
        "model": {"name": model_dir.name if model_dir else model.config.kind, "dir": str(model_dir) if model_dir else None,
                  "config": model.config.to_dict()},
        "data": {
            "sessions": sessions,
            "syllables_total": int(ds.sizes["syllable"]),
            "syllables_per_split": {str(k): int(v) for k, v in
                                    zip(*np.unique(ds["split"].values.astype(str), return_counts=True))},
            "syllables_analysed": int(data.ds.sizes["syllable"]),
            "units": [int(u) for u in data.ds["unit"].values],
            "freq_hz_range": [float(ds["freq_hz"].min()), float(ds["freq_hz"].max())],
        },
        "settings": settings.to_dict(),
        "clusters": {"k": clusters["k"], "silhouette": clusters["silhouette"],
                     "n_tuned": int((clusters["labels"] >= 0).sum()), "n_untuned": int((clusters["labels"] < 0).sum()),
                     "profiles": {"tuning": "tuning curves over syllable features (raw counts)",
                                  "latents": "correlations with the latents"}[settings.cluster_on],
                     "criterion": "fixed" if settings.n_clusters else
                     "max mean silhouette (Ward linkage) over the tuned units"},
        # all units together (not the mean of crosspred.csv's per-unit values); None: no spikes
        # bits per spike and r compare across models only on the same spike windows (data.neural_input)
        "crosspred": {"spike_window": SPIKE_WINDOWS[data.neural_input],
                      "bits_per_spike_all_units": _finite_or_none(cross["bits_per_spike"]),
                      # NLB's PSTH R² averaged over units, for the methods that predict binned counts
                      "psth_r2_mean_over_units": _finite_or_none(cross["psth_r2"])},
    }


def _finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    """``values`` for JSON: NaN (no spikes, no defined score) as None."""
    return {k: v if np.isfinite(v) else None for k, v in values.items()}
