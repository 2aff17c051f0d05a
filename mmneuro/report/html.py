"""One self-contained HTML report over every model's analysis folder (images embedded as base64).

Reads ``RESULTS_DIR/analysis/<model>/`` (the files written by ``mmneuro analyse``), on demo data the
scores against the planted truth in ``RESULTS_DIR/scores/<model>/`` (``mmneuro score``) and, if
present, ``RESULTS_DIR/dataset.nc`` for the data summary. Writes nothing but the one HTML file.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.inputs import SPIKE_WINDOWS
from mmneuro.report.consistency import consistency_context

CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222;overflow-wrap:anywhere}
h1{border-bottom:2px solid #444;margin:0.2em 0}h2{margin-top:2em;border-bottom:1px solid #aaa}
table{border-collapse:collapse;font-size:0.85em;margin:0.6em 0;display:block;max-width:100%;overflow-x:auto}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}
.note{color:#555;font-size:0.9em}.pass{color:#070;font-weight:bold}.fail{color:#b00;font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:0.4em 0}figure{margin:0.6em 0}
figcaption{max-width:60em}
.answer{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.answer>div{flex:1 1 30em;min-width:0}
.answer img{max-height:22em}.lead{font-size:1.05em;margin:0.4em 0}
.answer table{font-size:0.82em}
"""

# Syllable features as the report names them (the analysis' column names otherwise).
FEATURE_NAMES = {"mean_freq_hz": "mean frequency", "peak_freq_hz": "peak frequency", "bandwidth_hz": "bandwidth",
                 "duration_s": "duration", "fm_slope_hz_per_s": "FM slope", "amplitude_db": "amplitude"}
BEST_BY = "model (audio->neural)"  # the crosspred method whose held-out bits per spike picks the best model

FIGURES = [
    ("cluster_bands", "Each row a cluster (units in brackets), each column the syllables whose mean frequency "
                      "falls in that 5 kHz band: red where the cluster fires more than its average. A frequency "
                      "cluster shows one red patch under its ▼; a cluster tuned to another feature, and the untuned "
                      "row, show none."),
    ("latent_unit_correlation", "Correlation of every latent dimension with every unit's rate on held-out "
                                "syllables, for the tuned units, ordered by the dendrogram of their correlation "
                                "profiles. Look for blocks: the units of a cluster share a pattern of latents."),
    ("latent_traversals", "Decoded spectrograms while one latent dimension moves (the others at the most typical "
                          "syllable's values). A row whose energy climbs or falls in frequency is a latent that "
                          "codes frequency; a row that does not change is unused."),
    ("cross_generation", "Example held-out syllables: the true spectrogram, the model's reconstructions and "
                         "cross-generations, and spikes per unit predicted from audio alone (red) vs actual (grey "
                         "bars). Red dots that follow the bars mean the audio carries the units' response."),
    ("predicted_vs_actual", "Left: per unit, the model's Pearson r (x) against each baseline's (y); points below the "
                            "diagonal are units the model predicts better. Right: mean counts, on the diagonal when "
                            "the rates are calibrated."),
    ("latent_map", "Posterior means (first two principal components) coloured by the syllable's mean frequency "
                   "(the interactive map above shows the same with spectrograms on hover): a smooth gradient "
                   "means the latent space lays out frequency."),
    ("training_curves", "Training curves (metrics.csv of the model): validation losses should flatten, not rise "
                        "(overfitting)."),
]


def analysis_folders(results_dir: Path) -> list[Path]:
    """The folders under ``results_dir/analysis`` that hold a finished analysis (summary.json): one
    per model, or, for a dataset with sessions sorted on their own (docs/multisession.md), one per
    model and session (``<model>/sessions/<session>``, named by :func:`entry_name`)."""
    root = Path(results_dir) / "analysis"
    folders = sorted(p for p in root.glob("*") if (p / "summary.json").is_file()) if root.is_dir() else []
    folders += sorted(p for p in root.glob("*/sessions/*") if (p / "summary.json").is_file()) if root.is_dir() else []
    if not folders:
        raise InputError(root, "no analysis folders with summary.json (run `mmneuro analyse` first)")
    return folders


def entry_name(folder: Path) -> str:
    """The report's name of an analysis folder: the model, or ``<model> · <session>`` for one session's
    analysis of a model trained on sessions with their own units."""
    return f"{folder.parent.parent.name} · {folder.name}" if _is_session(folder) else folder.name


def _is_session(folder: Path) -> bool:
    return folder.parent.name == "sessions"


def _beside(folder: Path, stage: str) -> Path:
    """The folder another stage (``scores``, ``consistency``) writes for the analysis ``folder``:
    RESULTS_DIR/<stage>/<model> for RESULTS_DIR/analysis/<model>, and .../<model>/sessions/<session>
    for one session's analysis."""
    if _is_session(folder):
        return folder.parents[3] / stage / folder.parents[1].name / "sessions" / folder.name
    return folder.parent.parent / stage / folder.name


def build_report(results_dir) -> str:
    """The report's HTML text for every analysed model under ``results_dir`` (templates/analyses.html):
    first the answer of the best model, then the comparison of the models, the latent map, the details."""
    from markupsafe import Markup

    from mmneuro.collapse import COLLAPSE_NATS
    from mmneuro.report import latent_map

    results_dir = Path(results_dir)
    folders = analysis_folders(results_dir)
    summaries = {entry_name(f): json.loads((f / "summary.json").read_text()) for f in folders}
    comparison = _comparison_tables(folders)
    best = best_model(folders)
    answers = [(best, _answer(best["folder"], summaries[best["name"]]))]
    sessions = sorted({f.name for f in folders if _is_session(f)})
    if sessions:  # units sorted per session: each session's own answer, from its best model
        answers = []
        for session in sessions:
            its = best_model([f for f in folders if _is_session(f) and f.name == session])
            answers.append((its, _answer(its["folder"], summaries[its["name"]])))
    answer = answers[0][1]
    map_data = _map_data(results_dir, folders, summaries, answer)
    the_map = None
    if map_data is not None:
        script, div = latent_map.components(map_data, "latent map: posterior means of every model")
        the_map = {"script": Markup(script), "div": Markup(div), "caption": latent_map.caption(map_data)}
    return _template().render(
        css=Markup(CSS), names=list(summaries), results_dir=str(results_dir),
        bokeh_js=Markup(latent_map.bokeh_js()) if the_map else "", best=best, answers=answers, latent_map=the_map,
        data_rows=_data_rows(results_dir, next(iter(summaries.values())), _own_units(folders, summaries)), collapse_nats=Markup(f"{COLLAPSE_NATS:g}"),
        models=[_model_context(f, summaries[entry_name(f)]) for f in folders], matching=_matching(folders),
        **comparison)


def best_model(folders: list[Path]) -> dict:
    """The model whose audio predicts the held-out spikes best: highest bits per spike of all units
    together (summary.json, method BEST_BY), the mean Pearson r per unit breaking ties and standing in
    for an analysis without bits per spike. Both depend on the spike window scored (a syllable-long
    window explains spikes an onset window does not see), so only the models scored on the window most
    models share (the onset window on a tie) compete. Returns name, criterion and one row per model."""
    rows = []
    for f in folders:
        cross = json.loads((f / "summary.json").read_text()).get("crosspred", {})
        bps = cross.get("bits_per_spike_all_units", {})
        cp = pd.read_csv(f / "crosspred.csv")
        r = cp.loc[cp["method"] == BEST_BY, "pearson_r"].mean()
        rows.append({"model": entry_name(f), "folder": f, "bits_per_spike": bps.get(BEST_BY), "mean_r": None if pd.isna(r) else float(r),
                     "window": cross.get("spike_window", SPIKE_WINDOWS["counts"])})  # older analyses: onset window
    windows = [row["window"] for row in rows]
    window = max(dict.fromkeys(windows), key=lambda w: (windows.count(w), w == SPIKE_WINDOWS["counts"]))
    key = (lambda row: (row["window"] == window,
                        row["bits_per_spike"] if row["bits_per_spike"] is not None else -np.inf,
                        row["mean_r"] if row["mean_r"] is not None else -np.inf))
    ranked = sorted(rows, key=key, reverse=True)
    by_bps = all(row["bits_per_spike"] is not None for row in rows if row["window"] == window)
    criterion = ("highest held-out audio → neural bits per spike (all units together)" if by_bps
                 else "highest mean held-out audio → neural Pearson r per unit")
    if len(set(windows)) > 1:
        others = ", ".join(row["model"] for row in ranked if row["window"] != window)
        criterion += f", among the models scored on spikes in the {window}; {others}: another window, not compared"
    return {"name": ranked[0]["model"], "folder": ranked[0]["folder"], "criterion": criterion, "rows": ranked}


def _answer(folder: Path, summary: dict) -> dict:
    """The first screen's answer from one analysis folder: one row per cluster of tuned units (its
    units, band or feature, effect size and FDR q), the untuned units, the clusters x bands figure."""
    clusters = pd.read_csv(folder / "clusters.csv", keep_default_na=False, na_values=[""])
    bands = pd.read_csv(folder / "cluster_band.csv", keep_default_na=False, na_values=[""])
    fdr = summary["settings"].get("fdr_q")
    q = clusters["q_value"] if "q_value" in clusters else pd.Series(np.nan, index=clusters.index)  # older analyses
    rows = []
    for _, b in bands[bands["cluster"] >= 0].iterrows():
        members = clusters["cluster"] == b["cluster"]
        band = pd.notna(b["band_center_khz"])
        ids = clusters.loc[members, "unit"].astype(int).tolist()
        rows.append({"cluster": int(b["cluster"]), "unit_ids": ids, "units": ", ".join(map(str, ids)),
                     "n": int(b["n_units"]), "band": f"{b['band_center_khz']:.0f} kHz band" if band else "",
                     "feature": FEATURE_NAMES.get(b["best_feature"], b["best_feature"]),
                     "eta2": b["feature_eta2"], "band_r": b["band_r"], "q_max": q[members].max(),
                     "center": b["band_center_khz"] if band else np.inf})
    rows.sort(key=lambda r: (r["center"], r["feature"]))  # bands low to high, then the other features
    untuned = ~clusters["tuned"].astype(bool)
    figure = folder / "figures" / "cluster_bands.png"
    return {"name": entry_name(folder), "clusters": rows, "k": summary["clusters"]["k"], "fdr_q": fdr,
            "n_units": len(clusters), "untuned": list(zip(clusters.loc[untuned, "unit"].astype(int), q[untuned])),
            "on_tuning": summary["settings"].get("cluster_on") == "tuning",
            "criterion": summary["clusters"].get("criterion", ""),
            "figure": base64.b64encode(figure.read_bytes()).decode() if figure.is_file() else None,
            "caption": dict(FIGURES)["cluster_bands"]}


def _map_data(results_dir: Path, folders: list[Path], summaries: dict, answer: dict):
    """latent_map.MapData of every model's posterior means (the conditioning each analysis used) with
    the spectrograms and activity from RESULTS_DIR/dataset.nc; None without dataset.nc."""
    from mmneuro.analysis.figures import principal_components
    from mmneuro.inputs import latency_s, window_counts
    from mmneuro.io import read_netcdf
    from mmneuro.report import latent_map

    path = results_dir / "dataset.nc"
    if not path.is_file() or any(map(_is_session, folders)):
        return None  # per-session analyses: other syllables and units in each, no map over all of them
    means = {f.name: read_netcdf(f / "embeddings.nc", variables=["mean"])["mean"].sel(
        conditioning=summaries[f.name]["settings"]["conditioning"]) for f in folders}
    names = list(means)
    common = means[names[0]]["syllable"].values
    for m in names[1:]:
        common = common[np.isin(common, means[m]["syllable"].values)]
    if len(common) < 3:
        return None
    pick = latent_map.evenly_spaced(len(common))
    projections = {}
    for m in names:  # the projection is fitted on every syllable, then the shown ones are picked
        pcs, explained = principal_components(means[m].sel(syllable=common).values)
        projections[m] = (pcs[pick], explained)
    ds = read_netcdf(path, variables=[v for v in ("spectrogram", "total_counts") if v in _variables(path)])
    ds = ds.sel(syllable=common[pick])
    duration_s = ds["offset_s"].values - ds["onset_s"].values
    sessions = ds["session"].values.astype(str)
    syllables = pd.DataFrame({"syllable": ds["syllable"].values.astype(str), "session": sessions,
                              "freq_khz": ds["mean_freq_hz"].values / 1e3 if "mean_freq_hz" in ds.coords else np.nan,
                              "duration_ms": duration_s * 1e3})
    colourings = {"mean frequency (kHz)": syllables["freq_khz"].to_numpy(dtype=float),
                  "duration (ms)": syllables["duration_ms"].to_numpy(dtype=float),
                  "session (" + ", ".join(f"{i}: {s}" for i, s in enumerate(np.unique(sessions))) + ")":
                      np.unique(sessions, return_inverse=True)[1].astype(float)}
    if "total_counts" in ds:
        counts, exposure, _ = window_counts(ds, "total_counts", latency_s(ds))
        activity = latent_map.zscored_activity(counts, exposure)
        units = ds["unit"].values
        for row in answer["clusters"]:
            colourings[f"cluster {row['cluster']} activity ({answer['name']})"] = np.nanmean(
                activity[:, np.isin(units, row["unit_ids"])], axis=1)
        for i, u in enumerate(units):
            colourings[f"unit {u} activity"] = activity[:, i]
    thumbs = latent_map.thumbnails(ds["spectrogram"].transpose("syllable", "freq", "time").values) \
        if "spectrogram" in ds else []
    return latent_map.MapData(projections, syllables, colourings, thumbs, n_total=len(common))


def _variables(path: Path) -> set[str]:
    """The data variables of a NetCDF file, without loading them."""
    from mmneuro.io import NETCDF_ENGINE

    with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
        return set(ds.data_vars)


def _env():
    """The report's templates (mmneuro/report/templates); autoescaping on, so every value is escaped
    but the tables, which arrive as HTML (Markup)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("mmneuro.report", "templates"), autoescape=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined)


def _template():
    return _env().get_template("analyses.html")


def _table(df: pd.DataFrame, floatfmt: str = "{:.3g}") -> str:
    return df.to_html(index=False, float_format=lambda v: floatfmt.format(v), border=0, na_rep="–")


def _markup_table(df: pd.DataFrame, floatfmt: str = "{:.3g}"):
    """:func:`_table` marked safe for the templates (Markup: not escaped again)."""
    from markupsafe import Markup

    return Markup(_table(df, floatfmt))


def _own_units(folders: list[Path], summaries: dict) -> dict[str, int]:
    """Session -> its number of units, for per-session analyses (those of the first such model); {} else."""
    sessions = [f for f in folders if _is_session(f) and f.parent == folders[0].parent]
    return {f.name: len(summaries[entry_name(f)]["data"]["units"]) for f in sessions}


def _data_rows(results_dir: Path, summary: dict, own_units: dict[str, int] | None = None) -> list[tuple[str, object]]:
    """The data table's rows from an analysis' ``summary``; with ``own_units`` (sessions sorted on
    their own, :func:`_own_units`) its sessions and units are those of every session, the syllable
    counts those of the first session's analysis."""
    data = summary["data"]
    rows = [("sessions", ", ".join(data["sessions"]) or "–"), ("syllables", data["syllables_total"]),
            ("syllables per split", ", ".join(f"{k}: {v}" for k, v in data["syllables_per_split"].items())),
            ("held-out syllables analysed", data["syllables_analysed"]), ("units", len(data["units"])),
            ("spectrogram range (kHz)", "{:.0f}–{:.0f}".format(*[f / 1e3 for f in data["freq_hz_range"]]))]
    if own_units:
        first = f"(session {data['sessions'][0]})" if data["sessions"] else ""
        rows = [("sessions", ", ".join(own_units)), ("units (each session its own sort)",
                                                     ", ".join(f"{k}: {v}" for k, v in own_units.items()))] + [
            (f"{k} {first}", v) for k, v in rows[1:4]] + rows[5:]
    dataset = results_dir / "dataset.nc"
    if dataset.is_file():
        from mmneuro.io import read_netcdf

        ds = read_netcdf(dataset, variables=["session"])  # not the spectrograms: only the counts are shown
        per_session = ds["session"].to_series().value_counts().sort_index()
        rows.append(("syllables per session", ", ".join(f"{k}: {v}" for k, v in per_session.items())))
    return rows


def _comparison_tables(folders: list[Path]) -> dict:
    """Synergy tables of all models side by side, the cross-prediction summary per model, and where
    the planted factors sit (HTML tables; None where no model has one)."""
    syn = [pd.read_csv(f / "synergy.csv") for f in folders if (f / "synergy.csv").stat().st_size > 1]
    out = {"synergy": None, "planted": None}
    if syn:
        table = pd.concat(syn, ignore_index=True)
        keep = ["model", "target", "log_p_joint", "log_p_self", "log_p_cross", "joint_minus_self",
                "self_minus_cross", "ordered", "K", "n_syllables"]
        out["synergy"] = _markup_table(table[[c for c in keep if c in table]])
    rows = []
    for f in folders:
        cp = pd.read_csv(f / "crosspred.csv")
        if (oracle := _score_file(f, "crosspred_oracle.csv")) is not None:
            from mmneuro.synth.scoring import with_oracle_rows

            cp = with_oracle_rows(cp, pd.read_csv(oracle))
        scores = [c for c in ("pearson_r", "deviance_explained", "mse", "psth_r2") if c in cp]  # psth_r2: since issue 18
        means = cp.groupby(["direction", "method"], sort=False)[scores].mean()
        # all units together (summary.json; an analysis from before bits per spike, and the scores'
        # oracle rows, have none)
        bps = json.loads((f / "summary.json").read_text()).get("crosspred", {}).get("bits_per_spike_all_units", {})
        for (direction, method), r in means.iterrows():
            rows.append({"model": entry_name(f), "direction": direction, "method": method, "pearson_r": r["pearson_r"],
                         "bits_per_spike": float("nan") if bps.get(method) is None else bps[method],
                         **r.drop("pearson_r").to_dict()})
    out["crosspred"] = _markup_table(pd.DataFrame(rows))
    placed = [pd.read_csv(path).assign(model=entry_name(f)) for f in folders
              if (path := _score_file(f, "factors_planted_probes.csv")) is not None]
    if placed:
        table = pd.concat(placed).pivot_table(index=["factor", "expected_part"], columns=["model", "part"],
                                              values="r2", sort=False)
        table.columns = [f"{m}: {p}" for m, p in table.columns]
        out["planted"] = _markup_table(table.reset_index(), "{:.2f}")
    return out


def _score_file(folder: Path, name: str) -> Path | None:
    """``name`` of the scores against the planted truth of the analysis ``folder``: in the folder
    ``mmneuro score`` wrote for it (:func:`_beside`), else ``folder/name`` (an analysis written with a
    truth in memory); None when neither exists."""
    for path in (_beside(folder, "scores") / name, folder / name):
        if path.is_file():
            return path
    return None


def _model_context(folder: Path, summary: dict) -> dict:
    cfg = summary["model"]["config"]
    settings = {k: cfg.get(k) for k in ("kind", "latent_dim", "K", "beta", "likelihood_weighting")}
    settings["modalities"] = {m: f"{e.get('network')}/{e.get('likelihood')} {e.get('shape')}"
                              for m, e in cfg.get("modalities", {}).items()}
    clusters = pd.read_csv(folder / "clusters.csv", keep_default_na=False, na_values=[""])
    untuned = clusters.loc[~clusters["tuned"].astype(bool), "unit"].astype(int).tolist() if "tuned" in clusters else []
    model_dir = summary["model"].get("dir")  # None: analysed in memory, no model folder
    parts = []
    for png in sorted((folder / "figures").glob("traversal_*.png")):  # traversal_<part>_<modality>.png
        part, modality = png.stem.removeprefix("traversal_").rsplit("_", 1)
        parts.append((png.stem, f"The {modality} decoder as each {part} latent moves (one row per latent, ±2 SD), "
                                "the others at the most typical syllable's values."))
    figures = [{"stem": stem, "caption": caption, "data": base64.b64encode(png.read_bytes()).decode()}
               for stem, caption in FIGURES + parts if (png := folder / "figures" / f"{stem}.png").is_file()]
    factored = (folder / "factors_part_summary.csv").is_file()
    return {
        "name": entry_name(folder), "model_settings": json.dumps(settings), "analysis_settings": json.dumps(summary["settings"]),
        "k": summary["clusters"]["k"], "criterion": summary["clusters"]["criterion"],
        "runtime_s": summary.get("runtime_s", "?"),
        "posterior": _posterior(Path(model_dir) / "metrics.csv") if model_dir else None,
        "scores": _score_rows(json.loads(scores.read_text())) if (scores := _score_file(folder, "scores.json")) else None,
        "cluster_band": _markup_table(pd.read_csv(folder / "cluster_band.csv", keep_default_na=False, na_values=[""])),
        "untuned": untuned, "latent_band": _markup_table(pd.read_csv(folder / "latent_band.csv")),
        "clusters": _markup_table(clusters),
        "part_summary": _markup_table(pd.read_csv(folder / "factors_part_summary.csv")) if factored else None,
        "probes": _markup_table(pd.read_csv(folder / "factors_probes.csv")) if factored else None,
        "figures": figures,
        "consistency": consistency_context(_beside(folder, "consistency")),
    }


def _matching(folders: list[Path]) -> list[dict]:
    """Per model trained on sessions with their own units, its cross-session unit matching
    (unit_matching.csv): the mutually matched pairs with each unit's cluster in its session's
    analysis, ordered by session pair, cluster and unit so that a cluster can be followed across days,
    and how many of the assigned pairs are matched."""
    from mmneuro.analysis.multisession import MATCHING_FILE

    out = []
    for model in dict.fromkeys(f.parent.parent for f in folders if _is_session(f)):
        path = model / MATCHING_FILE
        if not path.is_file():
            continue
        table = pd.read_csv(path)
        clusters = {s.name: pd.read_csv(s / "clusters.csv").set_index("unit")["cluster"]
                    for s in (model / "sessions").iterdir() if (s / "clusters.csv").is_file()}
        for side in ("a", "b"):
            table[f"cluster_{side}"] = pd.array([clusters.get(str(s), pd.Series(dtype=int)).get(u) for s, u in zip(
                table[f"session_{side}"], table[f"unit_{side}"])], dtype="Int64")  # -1: untuned
        matched = table[table["matched"].astype(bool)].sort_values(["session_a", "session_b", "cluster_a", "unit_a"])
        cols = ["session_a", "cluster_a", "unit_a", "session_b", "cluster_b", "unit_b", "score"]
        cols += [c for c in ("self_score", "confident") if c in table]  # older analyses lack them
        out.append({"name": model.name, "n_pairs": len(table), "n_matched": len(matched),
                    "table": _markup_table(matched[cols], "{:.3f}")})
    return out


def _posterior(metrics_csv: Path) -> list[dict]:
    """What each modality's posterior carries at the best epoch (training's collapse alarm), if known:
    one dict per modality (info and KL in nats, collapsed); [] without metrics."""
    import csv

    from mmneuro.collapse import COLLAPSE_NATS, posterior_kl

    if not metrics_csv.is_file():
        return []
    with metrics_csv.open() as f:
        rows = list(csv.DictReader(f))
    info, kl = posterior_kl(rows), posterior_kl(rows, "kl_unimodal")
    return [{"modality": m, "info": v, "kl": kl.get(m, float("nan")), "collapsed": v < COLLAPSE_NATS}
            for m, v in info.items()]


def _posterior_block(metrics_csv: Path) -> str:
    """The report's paragraph on what each modality's posterior carries ("" without metrics)."""
    from markupsafe import Markup

    from mmneuro.collapse import COLLAPSE_NATS

    block = _env().get_template("macros.html").module.posterior_block
    return str(block(_posterior(metrics_csv), Markup(f"{COLLAPSE_NATS:g}")))


def _score_rows(scores: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met: True/False/None) rows of the scores against the planted truth."""
    t = scores["targets"]
    c = scores["clusters"]
    rows = [("clusters: ARI ≥ 0.9 (all units, untuned as one group)", f"ARI = {c['ari']:.3f}",
             t["ari_at_least_0.9"])]
    if "untuned_recall" in c:
        rows.append(("untuned units found (recall ≥ 0.9, ≤ 5 % of tuned flagged)",
                     f"recall {c['untuned_recall']:.2f} of {c['n_untuned']}; false flags "
                     f"{c['false_flag_rate']:.2f} of {c['n_tuned']}", t.get("untuned_recall_0.9_false_flags_0.05")))
    rows += [("each band cluster's centre within 2 kHz",
             "; ".join(f"{r['planted_cluster']}: {r['error_khz']:+.1f} kHz" for r in scores["band_recovery"]),
             t["bands_within_2_khz"]),
            ("audio→neural beats ridge and mean rate",
             ", ".join(f"{k}: r = {v:.3f}" for k, v in scores["crosspred_mean_pearson_r"].items()),
             t["model_beats_ridge_and_mean_rate"]),
            ("audio→neural ≥ 80% of the oracle's r", f"ratio = {scores.get('model_over_oracle_r') or float('nan'):.2f}",
             t["model_reaches_80pct_of_oracle"])]
    if t.get("synergy_ordered"):
        rows.append(("synergy order", ", ".join(f"{k}: {v}" for k, v in t["synergy_ordered"].items()),
                     all(t["synergy_ordered"].values())))
    fact = scores.get("factorisation", {})
    probes = fact.get("probes_r2", {})
    placement = [("audio-only amplitude: audio_private > shared", "log_amplitude", "audio_private",
                  "audio_only_in_audio_private"),
                 ("neural-only drift: neural_private > shared", "slow_drift", "neural_private",
                  "neural_only_in_neural_private")]
    for label, factor, part, key in placement:
        if fact.get("targets", {}).get(key) is not None:
            r2 = probes.get(factor, {})
            rows.append((label, f"R² {r2.get(part, float('nan')):.2f} vs {r2.get('shared', float('nan')):.2f}",
                         fact["targets"][key]))
    if fact.get("targets", {}).get("tuning_in_shared") is not None:
        rows.append(("tuning (frequency, duration) in shared: R² ≥ 0.5",
                     ", ".join(f"{f}: {probes.get(f, {}).get('shared', float('nan')):.2f}"
                               for f in ("mean_freq_hz", "duration_s")), fact["targets"]["tuning_in_shared"]))
    if fact.get("cross_generation_leak_r2"):
        rows.append(("source-only factor in cross-generated output (R², ≈ 0 is no copy)",
                     ", ".join(f"{k}: {v:.2f}" for k, v in fact["cross_generation_leak_r2"].items()), None))
    seg = "; ".join(f"{s}: F1 = {v['f1']:.3f} ({v['n_matched']}/{v['n_planted']} planted)"
                    for s, v in scores["segmentation"].items())
    rows.append(("segmentation (onsets)", seg, None))
    return rows


def write_report(results_dir, out_path) -> Path:
    """Build the report and write it atomically to ``out_path``."""
    from mmneuro.io import atomic_path

    text = build_report(results_dir)
    with atomic_path(out_path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(out_path)
