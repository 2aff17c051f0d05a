"""A short self-contained HTML report of one applied session (figures as base64 PNGs).

Uses the analysis report's style sheet, table formatting and latent-map figure; adds the two
figures only this report has: the session's out-of-distribution scores against the training
distribution, and predicted activity with its uncertainty for example syllables.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.analysis.figures import EXAMPLES, _plt, principal_components
from mmneuro.report import latent_map
from mmneuro.report.html import CSS, _env, _markup_table

MAX_FLAGGED_ROWS = 20


def _attr(ds: xr.Dataset, key: str, default=None):
    value = ds.attrs.get(key, default)
    return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value


def ood_figure(result: xr.Dataset):
    """One panel per OOD score: the session's percentiles in the training distribution (histogram);
    a session like the training data gives a flat histogram."""
    plt = _plt()
    names = list(result["score"].values)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False, constrained_layout=True)
    flag = float(_attr(result, "settings", {}).get("flag_percentile", 99.0))
    for ax, name in zip(axes[0], names):
        ax.hist(result["ood_percentile"].sel(score=name).values, bins=np.linspace(0, 100, 21), color="0.5")
        ax.axvline(flag, color="r", lw=1)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("percentile of training distribution", fontsize=7)
    return fig


def predicted_counts_figure(result: xr.Dataset):
    """Example syllables: predicted spikes per unit (summed over bins) ± 1 sd over posterior samples,
    with the recorded counts where the session has them."""
    plt = _plt()
    pred, sd = result["predicted_counts"], result["predicted_counts_sd"]
    if "bin" in pred.dims:  # sd of a sum over bins: the bins' samples are not independent, so bound it by the sum
        pred, sd = pred.sum("bin"), sd.sum("bin")
    n = min(EXAMPLES, result.sizes["syllable"])
    pick = np.linspace(0, result.sizes["syllable"] - 1, n).astype(int)
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.2), squeeze=False, constrained_layout=True, sharey=True)
    units = np.arange(result.sizes["unit"])
    for ax, k in zip(axes[0], pick):
        if "counts" in result and bool(result["has_neural"].values[k]):
            ax.bar(units, result["counts"].isel(syllable=k).sum("bin").values, color="0.7", label="recorded")
        ax.errorbar(units, pred.isel(syllable=k).values, yerr=sd.isel(syllable=k).values, fmt="r.", ms=3,
                    elinewidth=0.5, label="predicted")
        ax.set_title(str(result["syllable"].values[k]), fontsize=7)
        ax.set_xticks([])
    axes[0, 0].set_ylabel("spikes per window", fontsize=7)
    axes[0, 0].legend(fontsize=6)
    return fig


def _png(fig):
    from markupsafe import Markup

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return Markup(f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")


def _embedding_map(result: xr.Dataset) -> dict | None:
    """The interactive latent map of the session (the first conditioning's posterior means), coloured by
    its features and its units' recorded or predicted activity; None with fewer than 3 syllables."""
    from markupsafe import Markup

    from mmneuro.inputs import DEFAULT_LATENCY_S, window_counts

    if "embedding_mean" not in result or result.sizes["syllable"] < 3:
        return None
    conditioning = str(result["conditioning"].values[0])
    pick = latent_map.evenly_spaced(result.sizes["syllable"])
    pcs, explained = principal_components(result["embedding_mean"].isel(conditioning=0).values)
    ds = result.isel(syllable=pick)
    n = len(pick)
    duration_ms = (ds["offset_s"].values - ds["onset_s"].values) * 1e3
    freq = ds["mean_freq_hz"].values / 1e3 if "mean_freq_hz" in ds.coords else np.full(n, np.nan)
    syllables = pd.DataFrame({"syllable": ds["syllable"].values.astype(str), "freq_khz": freq,
                              "session": [str(result.attrs.get("session"))] * n, "duration_ms": duration_ms})
    colourings = {"mean frequency (kHz)": freq, "duration (ms)": duration_ms}
    if "total_counts" in ds:  # a session with neural data
        latency = (_attr(result, "preprocessing", {}).get("neural") or {}).get("latency_s", DEFAULT_LATENCY_S)
        counts, exposure, _ = window_counts(ds, "total_counts", latency)
        activity = latent_map.zscored_activity(counts, exposure)
        colourings |= {f"unit {u} recorded activity": activity[:, i] for i, u in enumerate(ds["unit"].values)}
    if "predicted_counts" in ds:
        pred = ds["predicted_counts"]
        pred = pred.sum("bin") if "bin" in pred.dims else pred
        activity = latent_map.zscored_activity(pred.transpose("syllable", "unit").values.astype(np.float64), np.ones(n))
        colourings |= {f"unit {u} predicted activity": activity[:, i] for i, u in enumerate(ds["unit"].values)}
    thumbs = latent_map.thumbnails(ds["spectrogram"].transpose("syllable", "freq", "time").values) \
        if "spectrogram" in ds else []
    data = latent_map.MapData({str(result.attrs.get("model_kind")): (pcs[pick], explained)}, syllables, colourings,
                              thumbs, n_total=result.sizes["syllable"])
    script, div = latent_map.components(data, f"latent map given {conditioning}")
    return {"conditioning": conditioning, "script": Markup(script), "div": Markup(div),
            "caption": latent_map.caption(data)}


def _own_units(result: xr.Dataset) -> dict | None:
    """A session with its own units: its read-in fit (attrs ``readin``) and the matching of its units
    to the training sorts' (mutually matched pairs first, then the rest of the assignment)."""
    from mmneuro.apply.pipeline import matching_table

    if "readin" not in result.attrs:
        return None
    table = matching_table(result).sort_values(["matched", "session_a", "score"], ascending=[False, True, False])
    summary = table.groupby("session_a", sort=False).agg(matched=("matched", "sum"), confident=("confident", "sum"),
                                                         size=("matched", "size")).reset_index()
    return {"fit": _attr(result, "readin"), "scored_on": result.attrs.get("scored_on", ""),
            "n_units": result.sizes.get("unit", 0), "per_sort": summary.to_dict("records"),
            "table": _markup_table(table.round({"score": 3}))}


def session_report(result: xr.Dataset, model_dir) -> str:
    """The report's HTML text for one applied session (the applied.nc Dataset; templates/apply.html)."""
    from markupsafe import Markup

    ood = None
    if "ood_summary" in result.attrs:
        ood = {"flagged": bool(result.attrs.get("session_flagged")), "n_flagged": 0, "flagged_table": None,
               "table": _markup_table(pd.DataFrame(_attr(result, "ood_summary"))), "figure": _png(ood_figure(result))}
        flagged = result.isel(syllable=result["ood_flag"].values.astype(bool))
        if flagged.sizes["syllable"]:
            table = pd.DataFrame({"syllable": flagged["syllable"].values, "onset_s": flagged["onset_s"].values,
                                  **{f"{s} percentile": flagged["ood_percentile"].sel(score=s).values
                                     for s in flagged["score"].values}})
            ood |= {"n_flagged": flagged.sizes["syllable"], "flagged_table": _markup_table(table.head(MAX_FLAGGED_ROWS))}
    scores = _attr(result, "crosspred_summary")
    embedding = _embedding_map(result)
    return _env().get_template("apply.html").render(
        css=Markup(CSS), session=str(result.attrs.get("session")), model_dir=str(model_dir),
        model_kind=str(result.attrs.get("model_kind")), present=_attr(result, "modalities_present", []),
        n_syllables=result.sizes["syllable"], reference=str(result.attrs.get("reference")),
        differences=_attr(result, "param_differences", []) or [], ood=ood,
        scores=_markup_table(pd.DataFrame(scores)) if scores else None,
        counts_figure=_png(predicted_counts_figure(result)) if "predicted_counts" in result else None,
        embedding=embedding, bokeh_js=Markup(latent_map.bokeh_js()) if embedding else "", own=_own_units(result))
