"""The analysis figures (matplotlib, Agg backend, PNG), one function per figure.

``write_all`` writes every figure the analysis has data for into a folder; each ``*_figure``
function returns a matplotlib Figure so a notebook can show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_TRAVERSED_LATENTS = 8
EXAMPLES = 6


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def correlation_heatmap_figure(r: np.ndarray, linkage, labels: np.ndarray, units: np.ndarray):
    """Latent x unit Pearson r (D, U), units ordered by the dendrogram, cluster ids along the bottom."""
    from scipy.cluster.hierarchy import dendrogram

    plt = _plt()
    fig, (ax_d, ax_h) = plt.subplots(2, 1, figsize=(max(6, 0.18 * len(units) + 2), 6),
                                     gridspec_kw={"height_ratios": [1, 3]}, constrained_layout=True)
    if linkage is not None:
        order = dendrogram(linkage, ax=ax_d, no_labels=True, color_threshold=0, above_threshold_color="0.3")["leaves"]
    else:
        order = list(range(len(units)))
    ax_d.set_axis_off()
    lim = max(float(np.abs(r).max()), 1e-6)
    im = ax_h.imshow(r[:, order], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax_h.set_yticks(range(r.shape[0]), [f"z{d}" for d in range(r.shape[0])], fontsize=7)
    ax_h.set_xticks(range(len(order)), [f"{units[i]}\nc{labels[i]}" for i in order], fontsize=6)
    ax_h.set_xlabel("unit (id, cluster)")
    fig.colorbar(im, ax=ax_h, label="Pearson r (latent, rate)")
    return fig


def mosaic(panels: np.ndarray, gap: int = 1, bottom_up: bool = True) -> np.ndarray:
    """Panels (rows, cols, F, T) as one image with NaN gaps, each panel's first row at its bottom
    (``bottom_up``, frequency) or top: one imshow draws a whole grid (a grid of axes took ~1 s of an
    analysis to lay out and save)."""
    r, c, f, t = panels.shape
    out = np.full((r * (f + gap) - gap, c * (t + gap) - gap), np.nan)
    for i in range(r):
        for j in range(c):
            out[i * (f + gap):i * (f + gap) + f, j * (t + gap):j * (t + gap) + t] = \
                panels[i, j, ::-1] if bottom_up else panels[i, j]
    return out


def mosaic_axes(ax, panels: np.ndarray, row_labels, col_labels, vmax: float, gap: int = 1, cmap: str = "magma",
                 bottom_up: bool = True):
    """Draw :func:`mosaic` on ``ax`` (``cmap``, 0..vmax, gaps white) with a label per panel row and column."""
    import matplotlib

    r, c, f, t = panels.shape
    colours = matplotlib.colormaps[cmap].with_extremes(bad="white")
    ax.imshow(mosaic(panels, gap, bottom_up), cmap=colours, vmin=0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_yticks(np.arange(r) * (f + gap) + f / 2, row_labels, fontsize=7)
    ax.set_xticks(np.arange(c) * (t + gap) + t / 2, col_labels, fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def traversal_figure(decode_audio, center: np.ndarray, sd: np.ndarray, sd_range: float, steps: int,
                     freq_hz: np.ndarray, time_s: np.ndarray):
    """Decoded spectrograms as one latent at a time moves over center +- sd_range SDs (rows: latents)."""
    plt = _plt()
    d = min(len(center), MAX_TRAVERSED_LATENTS)
    steps = min(steps, 7)
    offsets = np.linspace(-sd_range, sd_range, steps)
    grid = np.repeat(center[None, None, :], d, 0).repeat(steps, 1)
    grid[np.arange(d), :, np.arange(d)] += offsets[None, :] * sd[:d, None]
    images = decode_audio(grid.reshape(d * steps, -1)).reshape(d, steps, len(freq_hz), len(time_s))
    fig, ax = plt.subplots(figsize=(1.3 * steps, 1.2 * d), constrained_layout=True)
    # one scale for the whole grid, up to its 99th percentile: a faint decoder still shows what moves
    vmax = max(float(np.percentile(images, 99)), 1e-6)
    mosaic_axes(ax, images, [f"z{i}" for i in range(d)], [f"{o:+.1f} SD" for o in offsets], vmax)
    ax.xaxis.set_ticks_position("top")
    ax.set_title(f"decoded spectrograms (colour 0–{vmax:.2f}); each panel {freq_hz[0] / 1e3:.0f}–"
                 f"{freq_hz[-1] / 1e3:.0f} kHz bottom to top, {(time_s[-1] - time_s[0]) * 1e3:.0f} ms left to right",
                 fontsize=8)
    return fig


def cross_generation_figure(images: np.ndarray, generated: dict[str, np.ndarray], counts: np.ndarray,
                            predicted_counts: np.ndarray | None, freq_hz: np.ndarray):
    """Columns: example syllables. Rows: true spectrogram, each generated spectrogram, then true and
    audio-predicted counts per unit (bars)."""
    plt = _plt()
    n = min(EXAMPLES, len(images))
    pick = np.linspace(0, len(images) - 1, n).astype(int)
    panels = [("true spectrogram", images)] + list(generated.items())
    bars = predicted_counts is not None
    fig, axes = plt.subplots(1 + bars, 1, figsize=(1.8 * n, 1.6 * (len(panels) + bars)), squeeze=False,
                             constrained_layout=True, height_ratios=[len(panels)] + [1] * bars)
    mosaic_axes(axes[0, 0], np.stack([arr[pick] for _, arr in panels]), [t for t, _ in panels],
                 [f"syllable {k}" for k in pick], 1.0)
    axes[0, 0].set_title(f"each panel {freq_hz[0] / 1e3:.0f}–{freq_hz[-1] / 1e3:.0f} kHz bottom to top, "
                         "the syllable's time left to right", fontsize=8)
    if bars:
        ax, u = axes[1, 0], np.arange(counts.shape[1])
        step = len(u) + 2  # examples side by side, two empty slots apart
        for j, k in enumerate(pick):
            # one filled step outline per example draws its touching unit-wide bars (ax.bar: one patch per
            # unit, ~0.3 s of an analysis to build)
            ax.stairs(counts[k], j * step + np.arange(len(u) + 1) - 0.5, fill=True, color="0.6",
                      label="actual" if j == 0 else None)
            ax.plot(j * step + u, predicted_counts[k], "r.", ms=3, label="audio->neural" if j == 0 else None)
        ax.set_xticks(np.arange(n) * step + len(u) / 2, [f"syllable {k}: units" for k in pick], fontsize=7)
        ax.set_xlim(-1, n * step - 2)
        ax.set_ylabel("spikes per unit", fontsize=7)
        ax.legend(fontsize=6)
    return fig


def predicted_vs_actual_figure(counts: np.ndarray, predictions: dict[str, np.ndarray], units: np.ndarray):
    """Left: per-unit Pearson r of each method against the audio->neural model's. Right: predicted vs
    actual mean count per unit."""
    from mmneuro.analysis.neurons import pearson_columns

    plt = _plt()
    fig, (ax_r, ax_m) = plt.subplots(1, 2, figsize=(9, 4), constrained_layout=True)
    names = list(predictions)
    ref = names[0]
    r = {}
    for name, pred in predictions.items():
        ok = np.isfinite(pred).all(axis=1)
        r[name] = pearson_columns(counts[ok], pred[ok])
    for name in names[1:]:
        ax_r.plot(r[ref], r[name], "o", ms=4, label=name)
    ax_r.plot([-0.2, 1], [-0.2, 1], "k:", lw=1)
    ax_r.set_xlabel(f"Pearson r per unit: {ref}")
    ax_r.set_ylabel("Pearson r per unit: other method")
    ax_r.legend(fontsize=7)
    for name, pred in predictions.items():
        ok = np.isfinite(pred).all(axis=1)
        ax_m.plot(counts[ok].mean(0), pred[ok].mean(0), "o", ms=4, label=name)
    top = float(counts.mean(0).max()) * 1.1 + 1e-9
    ax_m.plot([0, top], [0, top], "k:", lw=1)
    ax_m.set_xlabel("actual mean spikes per syllable window")
    ax_m.set_ylabel("predicted mean")
    ax_m.set_title(f"{len(units)} units, held-out syllables", fontsize=8)
    return fig


def training_curves_figure(metrics_csv: Path):
    """The model's metrics.csv against the epoch: one panel per quantity, its training and validation
    values together (``train_x`` / ``val_x`` columns; other numeric columns alone), at most 12 panels."""
    import pandas as pd

    plt = _plt()
    table = pd.read_csv(metrics_csv)
    x = table["epoch"] if "epoch" in table else np.arange(len(table))
    numeric = [c for c in table.select_dtypes("number").columns if c != "epoch"]
    names = list(dict.fromkeys(c.removeprefix("train_").removeprefix("val_") for c in numeric))[:12]
    rows = max(1, -(-len(names) // 3))
    fig, axes = plt.subplots(rows, 3, figsize=(10, 2.4 * rows), squeeze=False)
    # fixed margins: a constrained layout of 12 panels took ~0.5 s of an analysis to solve
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.6 / (2.4 * rows), top=1 - 0.3 / (2.4 * rows),
                        hspace=0.55, wspace=0.3)
    for ax, name in zip(axes.flat, names):
        for prefix, style in (("train_", "-"), ("val_", "--"), ("", "-")):
            if prefix + name in table:
                ax.plot(x, table[prefix + name], style, label=prefix.rstrip("_") or None)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("epoch", fontsize=7)
    with_val = [ax for ax, name in zip(axes.flat, names) if f"val_{name}" in table]
    if with_val:
        with_val[0].legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.set_axis_off()
    return fig


def principal_components(z: np.ndarray, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` principal components of the rows of ``z`` (N, D) and each one's share of the
    variance: the 2-D projection of the latent maps (static and interactive)."""
    centered = z - z.mean(0)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:n].T, s[:n] ** 2 / max(float((s**2).sum()), 1e-12)


def latent_map_figure(z: np.ndarray, color: np.ndarray, color_label: str):
    """First two principal components of the posterior means, coloured by a syllable feature."""
    plt = _plt()
    pcs, explained = principal_components(z)
    fig, ax = plt.subplots(figsize=(5, 4.2), constrained_layout=True)
    sc = ax.scatter(pcs[:, 0], pcs[:, 1], c=color, s=6, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=color_label)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%} of variance)" if len(explained) > 1 else "PC2")
    return fig


def cluster_band_figure(ids: list[int], profiles: np.ndarray, edges_hz: np.ndarray, cluster_band):
    """Clusters x frequency bands: each cluster's mean z-scored rate (rows by band centre, the untuned units last)
    against the syllables' mean frequency (columns), its band centre marked, its size in the label."""
    plt = _plt()
    table = cluster_band.set_index("cluster")
    centre = {c: table.loc[c, "band_center_khz"] if c in table.index else np.nan for c in ids}
    order = sorted(range(len(ids)), key=lambda i: (ids[i] < 0, np.nan_to_num(centre[ids[i]], nan=np.inf), ids[i]))
    ids, profiles = [ids[i] for i in order], profiles[order]  # frequency clusters low to high, as the report lists them
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(ids) + 1.4), constrained_layout=True)
    lim = max(float(np.nanmax(np.abs(profiles))) if np.isfinite(profiles).any() else 0.0, 1e-6)
    lo, hi = edges_hz[0] / 1e3, edges_hz[-1] / 1e3
    im = ax.imshow(profiles, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                   extent=[lo, hi, len(ids) - 0.5, -0.5])
    names = []
    for i, c in enumerate(ids):
        row = table.loc[c] if c in table.index else None
        n = int(row["n_units"]) if row is not None else 0
        if c < 0:
            names.append(f"untuned ({n})")
            continue
        label = row["label"] if row is not None else ""
        names.append(f"cluster {c} ({n})" + ("" if label == "frequency band" else f"\n{label}"))
        center = row["band_center_khz"] if row is not None else np.nan
        if np.isfinite(center):
            ax.plot([center], [i], marker="v", color="k", ms=7)
    ax.set_yticks(range(len(ids)), names, fontsize=8)
    ax.set_xlabel("syllable mean frequency (kHz)")
    fig.colorbar(im, ax=ax, label="mean z-scored rate", shrink=0.9)
    ax.set_title("clusters (units) × frequency bands; ▼ band centre", fontsize=9)
    return fig


def analysis_figures(*, model, model_dir, data, emb, settings, lat_neu, clusters, traversal, cross, both=None,
                     cluster_band=None):
    """Every figure that applies to this model, built one at a time: yields (name, Figure). ``both``:
    the syllables with both modalities and ``cluster_band`` the cluster table (the clusters x bands
    figure; left out without them)."""
    from mmneuro.analysis.embed import decoder_mean, typical_latent

    units = data.ds["unit"].values
    tuned = clusters["labels"] >= 0  # the dendrogram is over the tuned units only
    if tuned.any():
        yield "latent_unit_correlation", correlation_heatmap_figure(
            lat_neu["r"].sel(correlation="pearson").values[:, tuned], clusters["linkage"], clusters["labels"][tuned],
            units[tuned])
    z = emb["mean"].sel(conditioning=settings.conditioning).values
    images = data.ds["spectrogram"].transpose("syllable", "freq", "time").values
    freq_hz = data.ds["freq_hz"].values
    if "audio" in model.modalities:
        yield "latent_traversals", traversal_figure(
            decoder_mean(model, "audio", settings.batch_size), typical_latent(z), z.std(0), settings.traversal_sd,
            settings.traversal_steps, freq_hz,
            data.ds["time_s"].values if "time_s" in data.ds.coords else np.arange(images.shape[-1]))
    generated = {k: v for k, v in cross["images"].items() if k.startswith("model")}
    model_pred = cross["predictions"].get("model (audio->neural)")
    yield "cross_generation", cross_generation_figure(images, generated, data.counts, model_pred, freq_hz)
    yield "predicted_vs_actual", predicted_vs_actual_figure(data.counts, cross["predictions"], units)
    metrics = Path(model_dir) / "metrics.csv" if model_dir is not None else None
    if metrics is not None and metrics.is_file():
        yield "training_curves", training_curves_figure(metrics)
    if both is not None and cluster_band is not None and "mean_freq_hz" in both.coords:
        yield "cluster_bands", _cluster_band_figure(both, clusters["labels"], settings, cluster_band)
    if "mean_freq_hz" in data.ds.coords:
        yield "latent_map", latent_map_figure(z, data.ds["mean_freq_hz"].values / 1e3, "mean frequency (kHz)")


def _cluster_band_figure(both, labels: np.ndarray, settings, cluster_band):
    """:func:`cluster_band_figure` from the raw rates of every syllable with both modalities, as the
    cluster table's bands are found (pipeline.cluster_bands)."""
    from mmneuro.analysis.bands import band_edges_hz, cluster_frequency_profiles
    from mmneuro.inputs import latency_s, window_counts

    counts, exposure, _ = window_counts(both, "total_counts", latency_s(both))
    edges = band_edges_hz(settings.band_min_hz, settings.band_max_hz, settings.band_width_hz)
    ids, profiles = cluster_frequency_profiles(counts / exposure[:, None], labels, both["mean_freq_hz"].values, edges)
    return cluster_band_figure(ids, profiles, edges, cluster_band)


def write_all(folder: Path, **inputs) -> list[Path]:
    """Write every figure of :func:`analysis_figures` (same keyword arguments) into ``folder`` (PNG);
    returns the paths."""
    plt = _plt()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in analysis_figures(**inputs):
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
