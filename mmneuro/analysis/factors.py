"""Shared vs modality-private latents: which part each latent belongs to, linear probes per part,
latent <-> neuron / band tables split by part, and decoder traversals per part.

A factorised model (``ModelConfig.private_dims`` > 0) has z = (shared, <modality>_private, ...);
``model.parts`` maps each part name to its slice of z. An unfactorised model is all ``shared``.
Probes: cross-validated ridge regression of a planted/measured feature on one part's posterior
means; the score is the out-of-fold R² = 1 − SSE/SST (can be < 0 when a part carries nothing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmneuro.analysis import bands, embed
from mmneuro.analysis.neurons import correlation


def latent_parts(model) -> dict[str, slice]:
    """{part: slice of z}; unfactorised models (or ones without ``parts``) are all ``shared``."""
    parts = getattr(model, "parts", None)
    if parts:
        return dict(parts)
    return {"shared": slice(0, int(model.config.latent_dim))}


def part_labels(model) -> list[str]:
    """The part name of every latent dimension, in z order."""
    labels = []
    for name, sl in latent_parts(model).items():
        labels += [name] * (sl.stop - sl.start)
    return labels


def probe_r2(z: np.ndarray, y: np.ndarray, *, folds: int = 5, alpha: float = 1e-3, seed: int = 0) -> float:
    """Out-of-fold R² of the ridge regression y ≈ b0 + z w (penalty ``alpha`` · N on standardised z).

    z (N, D), y (N,). Folds are a seeded random partition; predictions of each fold come from a fit
    on the others, so a part carrying no information scores ≈ 0 (slightly negative), never > 0 by
    overfitting alone. D = 0 scores 0.
    """
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if z.ndim != 2 or len(z) != n:
        raise ValueError(f"z must be (N, D) with N = len(y) = {n}, got {z.shape}")
    if z.shape[1] == 0 or n < 2 * folds:
        return 0.0
    # by hand, not sklearn (StandardScaler + Ridge(alpha · n_train) per fold, r2_score): those give the
    # same R² to the last bit but took 11x as long (8.3 vs 0.7 ms on 600 x 6), and it runs per factor x part
    fold = np.random.default_rng(seed).permutation(n) % folds
    pred = np.empty(n)
    for k in range(folds):
        train, test = fold != k, fold == k
        mu, sd = z[train].mean(0), z[train].std(0)
        sd = np.where(sd > 0, sd, 1.0)
        a = (z[train] - mu) / sd
        y0 = y[train].mean()
        # ridge normal equations (AᵀA + αN I) w = Aᵀ(y − ȳ), intercept unpenalised
        w = np.linalg.solve(a.T @ a + alpha * len(a) * np.eye(a.shape[1]), a.T @ (y[train] - y0))
        pred[test] = y0 + ((z[test] - mu) / sd) @ w
    sst = ((y - y.mean()) ** 2).sum()
    return float(1.0 - ((y - pred) ** 2).sum() / sst) if sst > 0 else 0.0


def probe_table(z: np.ndarray, features: dict[str, np.ndarray], parts: dict[str, slice], *,
                folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """One row per (feature, part): out-of-fold R² of the feature from that part of z (N, D_total),
    plus ``best_part`` per feature. Also a part ``all`` (the whole of z) for reference."""
    rows = []
    for feature, y in features.items():
        scores = {part: probe_r2(z[:, sl], y, folds=folds, seed=seed) for part, sl in parts.items()}
        best = max(scores, key=scores.get)
        for part, r2 in scores.items():
            rows.append({"feature": feature, "part": part, "n_latents": parts[part].stop - parts[part].start,
                         "r2": r2, "best_part": best})
        rows.append({"feature": feature, "part": "all", "n_latents": z.shape[1],
                     "r2": probe_r2(z, y, folds=folds, seed=seed), "best_part": best})
    return pd.DataFrame(rows)


def leading_components(values: np.ndarray, k: int = 16) -> np.ndarray:
    """Scores (N, k) of the rows of ``values`` (N, ...) on their k leading principal components, so a
    generated 4096-pixel image or a unit × bin rate map is probed with k regressors."""
    from scipy.linalg import eigh

    flat = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    centred = flat - flat.mean(0)
    # only k components are needed: the top k eigenvectors of the smaller of the Gram (N, N) and
    # scatter (P, P) matrices give the scores u·s of a full SVD (to ~1e-12 relative) in a fraction of
    # its time (on the demo's 969 × 4096 images 2.9 s instead of 73 s, sign of each column aside)
    n, p = centred.shape
    k = min(k, n, p)
    if n <= p:
        w, v = eigh(centred @ centred.T, subset_by_index=[n - k, n - 1])
        return v[:, ::-1] * np.sqrt(np.clip(w[::-1], 0.0, None))
    _, v = eigh(centred.T @ centred, subset_by_index=[p - k, p - 1])
    return centred @ v[:, ::-1]


def planted_probes(z: np.ndarray, planted: dict[str, np.ndarray], parts: dict[str, slice],
                   expected: dict[str, str]) -> pd.DataFrame:
    """One row per (planted factor, part): out-of-fold R² of the factor from that part of z (N, D),
    on the syllables where the factor is defined, with the part that should carry it."""
    rows = []
    for factor, y in planted.items():
        ok = _defined(y)
        if ok is None:
            continue
        for part, sl in parts.items():
            rows.append({"factor": factor, "expected_part": expected.get(factor, ""), "part": part,
                         "n_latents": sl.stop - sl.start, "n_syllables": int(ok.sum()), "r2": probe_r2(z[ok, sl], y[ok])})
    return pd.DataFrame(rows)


def leak_probe(generated: np.ndarray, y: np.ndarray, *, log: bool = False, k: int = 16) -> float:
    """R² of a source-only factor ``y`` from cross-generated outputs (N, ...): their k leading
    principal components (of log(x + 1e-3) for rates) — near 0 when generation does not copy it.
    NaN when fewer than 10 syllables have the factor or it is constant."""
    ok = _defined(y)
    if ok is None:
        return float("nan")
    values = np.log(generated[ok] + 1e-3) if log else generated[ok]
    return probe_r2(leading_components(values, k), y[ok])


def _defined(y: np.ndarray, min_count: int = 10) -> np.ndarray | None:
    """Mask of the syllables where factor ``y`` is defined; None if fewer than ``min_count`` or constant."""
    ok = np.isfinite(y)
    return ok if ok.sum() >= min_count and np.std(y[ok]) > 0 else None


def factorisation_targets(probes: pd.DataFrame, parts: dict[str, slice], margin: float = 0.05) -> dict:
    """Pass/fail of the planted-factor placement for a factorised model (None where not applicable):
    the audio-only amplitude is predicted better (by ``margin`` R²) from audio_private than from
    shared, the tuning features (frequency, duration) are carried by shared (R² ≥ 0.5), and the
    neural-only drift is predicted better (by ``margin``) from neural_private than from shared."""
    r2 = probes.pivot_table(index="factor", columns="part", values="r2") if len(probes) else pd.DataFrame()

    def better(factor, part):
        if factor not in r2.index or part not in parts:
            return None
        return bool(r2.loc[factor, part] > max(r2.loc[factor, "shared"], 0.0) + margin)

    tuning = [f for f in ("mean_freq_hz", "duration_s") if f in r2.index]
    return {"audio_only_in_audio_private": better("log_amplitude", "audio_private"),
            "tuning_in_shared": bool((r2.loc[tuning, "shared"] >= 0.5).all()) if tuning and len(parts) > 1 else None,
            "neural_only_in_neural_private": better("slow_drift", "neural_private")}


def with_parts(table: pd.DataFrame, labels: list[str], column: str = "latent") -> pd.DataFrame:
    """``table`` with a ``part`` column looked up from its ``column`` of latent indices."""
    out = table.copy()
    out.insert(out.columns.get_loc(column) + 1, "part", [labels[int(i)] for i in out[column]])
    return out


def latent_neuron_table(z: np.ndarray, rates_hz: np.ndarray, units: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Long table (latent, part, unit, r): Pearson r of each latent's posterior mean with each unit's
    rate (spikes/s) over syllables."""
    r = correlation(z, rates_hz)  # (D, U)
    d, u = r.shape
    table = pd.DataFrame({"latent": np.repeat(np.arange(d), u), "unit": np.tile(np.asarray(units), d),
                          "r": r.ravel()})
    return with_parts(table, labels)


def part_summary(latent_neuron: pd.DataFrame, latent_band: pd.DataFrame) -> pd.DataFrame:
    """Per part: latents, the strongest |r| with any unit, and the strongest |r| with any band."""
    neuron = latent_neuron.assign(abs_r=latent_neuron["r"].abs()).groupby("part")["abs_r"].max()
    band = latent_band.assign(abs_r=latent_band["band_r"].abs()).groupby("part")["abs_r"].max()
    count = latent_band.groupby("part")["latent"].count()
    return pd.DataFrame({"n_latents": count, "max_abs_r_unit": neuron, "max_abs_r_band": band}).reset_index()


def dataset_features(ds) -> dict[str, np.ndarray]:
    """Per-syllable features to probe: the syllable measurements of dataset.nc (finite ones only)
    and ``amplitude_db`` (an audio-only level measure)."""
    names = list(bands.FEATURES) + ["amplitude_db"]
    out = {k: ds[k].values.astype(np.float64) for k in names if k in ds.coords}
    return {k: v for k, v in out.items() if np.isfinite(v).all() and v.std() > 0}


def factor_tables(model, x: dict[str, np.ndarray], ds, *, band_width_hz: float = 5000.0,
                  batch_size: int = 256, z: np.ndarray | None = None) -> dict[str, pd.DataFrame]:
    """Tables for a trained model on dataset.nc ``ds`` (syllables with both modalities) and its
    model inputs ``x`` (``mmneuro.inputs.model_inputs``):

    ``latent_parts`` (latent, part), ``probes`` (feature × part R², :func:`probe_table`; z is the
    joint posterior mean), ``latent_neuron`` (latent, part, unit, r), ``latent_band``
    (``bands.latent_band_table`` with a part column) and ``part_summary``.
    """
    if z is None:
        z, _ = embed.posterior_moments(model, x, tuple(model.modalities), batch_size)
    labels = part_labels(model)
    freq_hz = ds["freq_hz"].values
    edges = bands.band_edges_hz(float(freq_hz.min()), float(freq_hz.max()), band_width_hz)
    energies = bands.band_energy(ds["spectrogram"].transpose("syllable", "freq", "time").values, freq_hz, edges)
    features = dataset_features(ds)
    latent_band = with_parts(bands.latent_band_table(z, energies, (edges[:-1] + edges[1:]) / 2, features), labels)
    tables = {"latent_parts": pd.DataFrame({"latent": np.arange(len(labels)), "part": labels}),
              "probes": probe_table(z, features, latent_parts(model)),
              "latent_band": latent_band}
    if "neural" in x and "total_counts" in ds:
        duration = ds["bin_end_s"].values.max() - ds["bin_start_s"].values.min()
        rates = ds["total_counts"].transpose("syllable", "unit").values / duration
        tables["latent_neuron"] = latent_neuron_table(z, rates, ds["unit"].values, labels)
        tables["part_summary"] = part_summary(tables["latent_neuron"], latent_band)
    return tables


def traversal_grid(decode_mean, z_center: np.ndarray, z_sd: np.ndarray, dims: list[int], *, sd_range: float = 2.0,
                   steps: int = 5) -> np.ndarray:
    """Decoded means along each latent in ``dims`` over centre ± sd_range·sd (others at the centre):
    (len(dims), steps, *decoded shape)."""
    offsets = np.linspace(-sd_range, sd_range, steps)
    grid = np.repeat(z_center[None, None, :], len(dims), 0).repeat(steps, 1)  # (dims, steps, D)
    for row, d in enumerate(dims):
        grid[row, :, d] += offsets * z_sd[d]
    out = decode_mean(grid.reshape(-1, len(z_center)).astype(np.float32))
    return out.reshape(len(dims), steps, *out.shape[1:])


def traversal_figures(model, z: np.ndarray, out_dir, *, sd_range: float = 2.0, steps: int = 5,
                      batch_size: int = 256) -> list:
    """One PNG per (part, modality the part feeds): spectrogram grids for audio (latent × step), mean
    rate over bins per unit for neural (latent × step, unit × bin image or unit bars). Returns paths."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mmneuro.analysis.figures import mosaic_axes
    from mmneuro.io import atomic_path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    center, sd = embed.typical_latent(z), z.std(0)
    paths = []
    for part, sl in latent_parts(model).items():
        dims = list(range(sl.start, sl.stop))
        for modality in model.modalities:
            if part != "shared" and part != f"{modality}_private":
                continue  # a modality's decoder never reads another modality's private part
            grid = traversal_grid(embed.decoder_mean(model, modality, batch_size), center, sd, dims,
                                  sd_range=sd_range, steps=steps)
            # rate per unit: a column 8 pixels wide, so the 1-pixel gaps between panels stay thin
            panels = grid if grid.ndim == 4 else np.repeat(grid[..., None], 8, axis=-1)
            fig, ax = plt.subplots(figsize=(1.4 * steps, 1.2 * len(dims)), constrained_layout=True)
            # one colour scale per figure (0 to the 99th percentile), so a traversal's changes are
            # comparable across panels and a faint decoder still shows what moves; one image of all
            # panels (figures.mosaic): a grid of axes cost ~3 s of a factorised model's analysis
            hi = max(float(np.percentile(grid, 99)), 1e-6)
            offsets = np.linspace(-sd_range, sd_range, steps)
            mosaic_axes(ax, panels, [f"z{d}" for d in dims], [f"{o:+.1f} SD" for o in offsets], hi,
                         cmap="magma" if modality == "audio" else "viridis", bottom_up=modality == "audio")
            ax.xaxis.set_ticks_position("top")
            what = "spectrogram" if modality == "audio" else "rate (unit × bin)" if grid.ndim == 4 else "rate per unit"
            ax.set_title(f"{part}: {modality} {what}, ±{sd_range} SD (colour 0–{hi:.2g})", fontsize=8)
            path = out_dir / f"traversal_{part}_{modality}.png"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
            plt.close(fig)
            paths.append(path)
    return paths
