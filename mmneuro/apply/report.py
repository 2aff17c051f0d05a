"""A short self-contained HTML report of one applied session (figures as base64 PNGs).

Uses the analysis report's style sheet, table formatting and latent-map figure; adds the two
figures only this report has: the session's out-of-distribution scores against the training
distribution, and predicted activity with its uncertainty for example syllables.
"""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.analysis.figures import EXAMPLES, _plt, latent_map_figure
from mmneuro.report.html import CSS, _table

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


def _png(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def session_report(result: xr.Dataset, model_dir) -> str:
    """The report's HTML text for one applied session (the applied.nc Dataset)."""
    session = html.escape(str(result.attrs.get("session")))
    present = _attr(result, "modalities_present", [])
    parts = [f"<h1>mmneuro apply: {session}</h1>",
             f"<p class=note>model {html.escape(str(model_dir))} ({html.escape(str(result.attrs.get('model_kind')))}); "
             f"modalities recorded: {html.escape(', '.join(present))}; {result.sizes['syllable']} syllables; "
             f"reference: {html.escape(str(result.attrs.get('reference')))}</p>"]
    differences = _attr(result, "param_differences", []) or []
    if differences:
        parts.append("<p class=fail>Preprocessed with the model's parameters, which differ from the current config:</p>"
                     "<ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in differences) + "</ul>")
    if "ood_summary" in result.attrs:
        verdict = ("<span class=fail>flagged: unlike the training data</span>" if result.attrs.get("session_flagged")
                   else "<span class=pass>like the training data</span>")
        parts.append(f"<h2>Out-of-distribution check: {verdict}</h2>"
                     "<p class=note>Scores per syllable: reconstruction error (nats per element) and posterior KL "
                     "(nats), as percentiles of the same scores on the training syllables.</p>"
                     + _table(pd.DataFrame(_attr(result, "ood_summary"))) + _png(ood_figure(result)))
        flagged = result.isel(syllable=result["ood_flag"].values.astype(bool))
        if flagged.sizes["syllable"]:
            table = pd.DataFrame({"syllable": flagged["syllable"].values, "onset_s": flagged["onset_s"].values,
                                  **{f"{s} percentile": flagged["ood_percentile"].sel(score=s).values
                                     for s in flagged["score"].values}})
            parts.append(f"<h3>Flagged syllables ({flagged.sizes['syllable']})</h3>"
                         + _table(table.head(MAX_FLAGGED_ROWS)))
    scores = _attr(result, "crosspred_summary")
    if scores:
        parts.append("<h2>Predictions scored against the recorded modality</h2>" + _table(pd.DataFrame(scores)))
    if "predicted_counts" in result:
        parts.append("<h2>Predicted neural activity</h2>" + _png(predicted_counts_figure(result)))
    if "embedding_mean" in result and "mean_freq_hz" in result.coords and result.sizes["syllable"] > 2:
        z = result["embedding_mean"].isel(conditioning=0).values
        parts.append(f"<h2>Embedding ({html.escape(str(result['conditioning'].values[0]))})</h2>"
                     + _png(latent_map_figure(z, result["mean_freq_hz"].values / 1e3, "mean frequency (kHz)")))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mmneuro apply {session}</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")
