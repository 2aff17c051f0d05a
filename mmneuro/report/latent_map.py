"""The reports' interactive latent map (bokeh, its JavaScript inline: the page works offline).

Each syllable is a point at the first two principal components of its posterior mean; hovering
shows its spectrogram (a small grey PNG thumbnail carried in the page) and features; a selector
colours the points by a feature, the session, or a unit's or cluster's activity, another switches
between models. One data source holds every model's coordinates, so the thumbnails are stored once.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MAX_POINTS = 2000  # at most this many syllables (evenly spaced over the dataset) keep the page small
THUMB_PX = 40  # thumbnail side in pixels (shown enlarged, pixelated, in the tooltip)

TOOLTIP = """<div style="display:flex;gap:6px;align-items:flex-start">
<img src="@thumb" width="120" height="120" style="image-rendering:pixelated;border:1px solid #999" alt="spectrogram">
<div style="font-size:12px;line-height:1.35"><b>@syllable</b><br>session @session<br>@freq_khz{0.0} kHz mean<br>
@duration_ms{0} ms<br>colour: @value{0.00}</div></div>"""

# Copies the chosen model's coordinates and the chosen colouring into the plotted columns and fits
# the colour scale to the values shown (finite ones only).
CALLBACK = """
const d = {...src.data};
const m = models.indexOf(model_select.value), c = colours.indexOf(colour_select.value);
d.x = d["x" + m]; d.y = d["y" + m]; d.value = d["v" + c];
let lo = Infinity, hi = -Infinity;
for (const v of d.value) { if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }
mapper.low = Number.isFinite(lo) ? lo : 0; mapper.high = hi > lo ? hi : lo + 1;
xaxis.axis_label = axis_labels[m][0]; yaxis.axis_label = axis_labels[m][1];
src.data = d;
"""


@dataclass
class MapData:
    """What the map shows. projections: model name -> (N, 2) coordinates with the share of variance of
    each axis; syllables: N rows with columns syllable, session, freq_khz, duration_ms; colourings:
    name -> (N,) values (the first one shown first); thumbs: N PNG data URIs ("" where no spectrogram)."""

    projections: dict[str, tuple[np.ndarray, np.ndarray]]
    syllables: pd.DataFrame
    colourings: dict[str, np.ndarray]
    thumbs: list[str] = field(default_factory=list)
    n_total: int = 0  # syllables before the cap (MAX_POINTS)


def evenly_spaced(n: int, most: int = MAX_POINTS) -> np.ndarray:
    """Indices of at most ``most`` of ``n`` items, evenly spaced (deterministic, every part represented)."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int)) if n else np.zeros(0, int)


def thumbnails(images: np.ndarray, size: int = THUMB_PX) -> list[str]:
    """Grey PNG data URIs of spectrograms (N, F, T) in [0, 1], low frequencies at the bottom, resized
    to ``size`` x ``size``; "" for an image with no finite value (a syllable without audio)."""
    from PIL import Image

    out = []
    for img in np.asarray(images, dtype=np.float64):
        if not np.isfinite(img).any():
            out.append("")
            continue
        grey = (np.clip(np.nan_to_num(img[::-1]), 0, 1) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(grey, "L").resize((size, size), Image.BILINEAR).save(buf, format="PNG", optimize=True)
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def zscored_activity(counts: np.ndarray, exposure_s: np.ndarray) -> np.ndarray:
    """Rates (spikes / window length) z-scored per unit over syllables: (N, U) from counts (N, U)."""
    rates = counts / exposure_s[:, None]
    sd = np.nanstd(rates, axis=0)
    return (rates - np.nanmean(rates, axis=0)) / np.where(sd > 0, sd, 1.0)


def components(data: MapData, title: str = "latent map") -> tuple[str, str]:
    """(script, div) HTML of the map (bokeh.embed.components); the page must also carry
    :func:`bokeh_js` once."""
    from bokeh.embed import components as bokeh_components
    from bokeh.layouts import column, row
    from bokeh.models import (ColorBar, ColumnDataSource, CustomJS, HoverTool, LinearColorMapper, Select)
    from bokeh.palettes import Viridis256
    from bokeh.plotting import figure

    models, colours = list(data.projections), list(data.colourings)
    columns = {k: data.syllables[k].to_numpy() for k in ("syllable", "session", "freq_khz", "duration_ms")}
    columns["thumb"] = list(data.thumbs) if data.thumbs else [""] * len(data.syllables)
    axis_labels = []
    for i, (xy, explained) in enumerate(data.projections.values()):
        columns[f"x{i}"], columns[f"y{i}"] = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
        axis_labels.append([f"PC{j + 1} ({explained[j]:.0%} of variance)" for j in range(2)])
    for i, values in enumerate(data.colourings.values()):
        columns[f"v{i}"] = np.asarray(values, dtype=np.float32)
    columns.update(x=columns["x0"], y=columns["y0"], value=columns["v0"])
    source = ColumnDataSource(columns)
    finite = columns["v0"][np.isfinite(columns["v0"])]
    mapper = LinearColorMapper(palette=Viridis256, low=float(finite.min()) if len(finite) else 0.0,
                               high=float(finite.max()) if len(finite) and finite.max() > finite.min() else 1.0)
    plot = figure(title=title, height=480, sizing_mode="stretch_width", tools="pan,wheel_zoom,box_zoom,reset,save",
                  x_axis_label=axis_labels[0][0], y_axis_label=axis_labels[0][1], output_backend="canvas")
    plot.scatter("x", "y", source=source, size=6, alpha=0.8, line_color=None,
                 fill_color={"field": "value", "transform": mapper})
    plot.add_tools(HoverTool(tooltips=TOOLTIP))
    plot.add_layout(ColorBar(color_mapper=mapper, title="colour", width=10), "right")
    model_select = Select(title="model", value=models[0], options=models, width=220)
    colour_select = Select(title="colour by", value=colours[0], options=colours, width=260)
    callback = CustomJS(args=dict(src=source, mapper=mapper, model_select=model_select, colour_select=colour_select,
                                  models=models, colours=colours, axis_labels=axis_labels,
                                  xaxis=plot.xaxis[0], yaxis=plot.yaxis[0]), code=CALLBACK)
    model_select.js_on_change("value", callback)
    colour_select.js_on_change("value", callback)
    controls = [model_select, colour_select] if len(models) > 1 else [colour_select]
    layout = column(row(*controls), plot, sizing_mode="stretch_width")
    return bokeh_components(layout)


def bokeh_js() -> str:
    """The BokehJS library (core and widgets) as inline <script> tags: no network needed to view."""
    from bokeh.resources import Resources

    return Resources(mode="inline", components=["bokeh", "bokeh-widgets"]).render_js()


def caption(data: MapData) -> str:
    """What the map shows and how many of the syllables."""
    shown = len(data.syllables)
    cap = (f"{shown} of {data.n_total} syllables, evenly spaced over the dataset (at most {MAX_POINTS} keep the page "
           "small)" if data.n_total > shown else f"all {shown} syllables")
    return (f"Each point is a syllable at the first two principal components of its posterior mean ({cap}). "
            "Hover a point to see its spectrogram (thumbnail, low frequencies at the bottom) and features; "
            f"'colour by' switches between {', '.join(_kinds(data))} (activity: z-scored spikes per syllable "
            "window). Look for gradients: a colouring that changes "
            "smoothly across the map is a feature the latent space lays out.")


def _kinds(data: MapData) -> list[str]:
    """The kinds of colouring the selector offers, for the caption (units and clusters named once)."""
    kinds = []
    for name in data.colourings:
        kind = name.split(" (")[0]
        for prefix in ("unit", "cluster"):
            kind = f"a {prefix}'s activity" if kind.startswith(prefix + " ") else kind
        if kind not in kinds:
            kinds.append(kind)
    return kinds
