"""``apply_model``: a trained model + new sessions -> ``<out>/<session>/applied.nc`` and ``report.html``.

The reference is the dataset the model was trained on (its held-out val/test syllables): the
distribution for the out-of-distribution check, the unit ids new neural data must have, and the
mean-rate / mean-spectrogram baselines the predictions are scored against.
Every session is preprocessed (and so checked) before anything is written; each session's folder
is built beside its destination and renamed into place.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.apply import ood, predict
from mmneuro.apply.sessions import Session, param_differences, preprocess, stored_params
from mmneuro.errors import InputError
from mmneuro.inputs import DEFAULT_LATENCY_S, DIMS, model_inputs, window_counts
from mmneuro.io import atomic_path, read_netcdf, write_netcdf

APPLIED_FILE, REPORT_FILE = "applied.nc", "report.html"
MATCHING_FILE = "unit_matching.csv"  # a session with its own units: them matched to the training sorts' units


@dataclass
class ApplySettings:
    """n_samples: posterior samples per syllable for the predictions; seed: their generator's seed
    (and the read-in fit's); flag_percentile: a syllable above this percentile of the training
    distribution in any score is flagged; session_flag_fraction: a session with more flagged
    syllables than this is flagged. readin_*: the read-in/read-out fit of a session with its own
    units (mmneuro.apply.readin.fit_readin): at most readin_epochs epochs, stopped after
    readin_patience without a validation improvement, Adam step readin_lr, the session's syllables
    split into train / val (readin_val_fraction) / test (readin_test_fraction, for the scores)."""

    n_samples: int = 50
    seed: int = 0
    batch_size: int = 256
    flag_percentile: float = 99.0
    session_flag_fraction: float = 0.1
    readin_epochs: int = 200
    readin_patience: int = 10
    readin_lr: float = 1e-2
    readin_val_fraction: float = 0.15
    readin_test_fraction: float = 0.15

    def check(self) -> None:
        if self.n_samples < 1 or self.batch_size < 1:
            raise InputError("n_samples/batch_size", "must be positive")
        if self.readin_epochs < 1 or self.readin_patience < 1 or not self.readin_lr > 0:
            raise InputError("readin_epochs/readin_patience/readin_lr", "must be positive")
        fractions = (self.readin_val_fraction, self.readin_test_fraction)
        if not all(0 <= f < 1 for f in fractions) or sum(fractions) >= 1:
            raise InputError("readin_val_fraction/readin_test_fraction", f"must lie in [0, 1) with a sum below 1, got {fractions}")
        if not 0 < self.flag_percentile < 100:
            raise InputError("flag_percentile", f"must lie in (0, 100), got {self.flag_percentile}")
        if not 0 <= self.session_flag_fraction <= 1:
            raise InputError("session_flag_fraction", f"must lie in [0, 1], got {self.session_flag_fraction}")


@dataclass
class Reference:
    """The model's held-out syllables (every modality present, split val or test) as model inputs."""

    ds: xr.Dataset
    x: dict[str, np.ndarray]
    where: str
    dataset: xr.Dataset  # every syllable: the matching of a new session's own units decodes rates on them


def default_reference(model_dir: str | Path) -> Path:
    """The workflow's layout: results/models/<model>/ was trained on results/dataset.nc."""
    return Path(model_dir).resolve().parent.parent / "dataset.nc"


def load_reference(path: str | Path, model, neural_input: str) -> Reference:
    ds = read_netcdf(path)
    if "split" not in ds.coords:
        raise InputError(path, "no `split` coordinate: not a dataset.nc from `mmneuro dataset`")
    # held-out syllables (val, test): what new in-distribution data look like to the model; the
    # training syllables were fitted and so have lower reconstruction errors than any new data
    keep = ds["split"].values.astype(str) != "train"
    for name in model.modalities:
        keep &= ds[f"has_{name}"].values.astype(bool) if f"has_{name}" in ds.coords else True
    held_out = ds.isel(syllable=keep)
    if held_out.sizes["syllable"] < 10:
        raise InputError(path, f"only {held_out.sizes['syllable']} held-out (val/test) syllables with every modality (need 10)")
    for name in model.modalities:
        held_out.coords[f"has_{name}"] = ("syllable", np.ones(held_out.sizes["syllable"], np.int8))
    x = model_inputs(held_out, model, str(path), neural_input=neural_input, present_only=True)
    return Reference(held_out, x, str(path), ds)


def apply_model(model_dir: str | Path, sessions: list[Session], out_dir: str | Path, *,
                reference: str | Path | None = None, settings: ApplySettings | None = None,
                current: dict | None = None, progress: bool = True) -> list[Path]:
    """Apply the model in ``model_dir`` to ``sessions``; write ``out_dir/<session>/``; return the folders.

    reference: the model's dataset.nc (default: ``model_dir/../../dataset.nc``). current: the stage
    parameters the pipeline uses now (mmneuro.apply.sessions.current_params); any difference from
    the model's is reported (the model's parameters are used).
    """
    from mmneuro.models import load_model

    settings = settings or ApplySettings()
    settings.check()
    if not sessions:
        raise InputError("sessions", "no sessions to apply the model to")
    ids = [s.session for s in sessions]
    if len(set(ids)) != len(ids):
        raise InputError("sessions", f"duplicate session ids {sorted({i for i in ids if ids.count(i) > 1})}")
    model = load_model(model_dir)
    params = stored_params(model, Path(model_dir) / "config.json")
    differences = param_differences(params, current or {})
    for line in differences:
        warnings.warn(f"{model_dir}: preprocessing with the model's parameters, which differ from the current "
                      f"config: {line}", stacklevel=2)
    ref = load_reference(reference or default_reference(model_dir), model, params["neural_input"])
    data = []
    for s in _progress(sessions, "preprocessing", progress):
        data.append(preprocess(s, params, _units_to_check(s, model, ref), progress=False))
    out_dir = Path(out_dir)
    written = []
    for s, ds in _progress(list(zip(sessions, data)), "applying", progress):
        if s.units == "own" and s.neural is not None:
            result = apply_own_units(model, ds, ref, params, settings)
        else:
            result = apply_to_data(model, ds, ref, params, settings)
        result.attrs.update({"model_dir": str(model_dir), "param_differences": differences})
        written.append(write_session(result, out_dir / s.session, model_dir))
    return written


def _units_to_check(session: Session, model, ref: Reference) -> np.ndarray | None:
    """The unit ids a session's neural data must have: the model's, unless the session has its own
    (``units: own``: any units, fitted a read-in/read-out). A model whose units are several
    sessions' own sorts has no ids to match: such a session must say ``units: own``. Checked
    before anything is written: an own-unit session needs its audio (see mmneuro.apply.readin)."""
    if "neural" not in model.modalities or session.neural is None:
        return None
    if session.units == "own":
        if session.audio is None or "audio" not in model.modalities:
            raise InputError(session.session, "a session with its own units needs its audio and a model with an "
                                              "audio expert: its units' read-in and read-out are fitted against the "
                                              "latent its audio gives")
        return None
    if "unit_session" in ref.ds.coords:
        sorts = sorted(set(ref.ds["unit_session"].values.tolist()))
        raise InputError(session.neural, f"the model's units are the own sorts of its training sessions ({', '.join(sorts)}), "
                                         "so new neural data cannot be matched to them by id; mark the session "
                                         "`units: own` in the sessions table to fit a read-in and read-out for its units")
    return ref.ds["unit"].values


def apply_own_units(model, ds: xr.Dataset, ref: Reference, params: dict, settings: ApplySettings) -> xr.Dataset:
    """The applied.nc Dataset of a session with its own units: the model with a read-in and read-out
    fitted to them (mmneuro.apply.readin), the session's usual outputs with its units, scored on
    its test syllables, and ``unit_matching`` (attrs): its units matched to the training sorts' by
    rates decoded from audio over the reference's and the session's syllables."""
    from mmneuro.apply.readin import fit_readin, match_to_training

    where = ds.attrs.get("session", "session")
    fit = fit_readin(model, ds, neural_input=params["neural_input"], epochs=settings.readin_epochs,
                     patience=settings.readin_patience, lr=settings.readin_lr, seed=settings.seed,
                     val_fraction=settings.readin_val_fraction, test_fraction=settings.readin_test_fraction,
                     where=where)
    out = apply_to_data(fit.model, ds.assign_coords(readin_split=("syllable", fit.split)), ref, params, settings)
    last = fit.metrics[-1]
    out.attrs["readin"] = {"fitted": fit.fitted, "epochs": len(fit.metrics), "best_epoch": fit.best_epoch,
                           "n_train": int((fit.split == "train").sum()), "n_val": int((fit.split == "val").sum()),
                           "n_test": int((fit.split == "test").sum()),
                           **{k: last[k] for k in ("train_loss", "val_loss") if k in last}}
    table = match_to_training(model, fit.model, ref.dataset, ds, fit.split, params["neural_input"],
                              batch_size=settings.batch_size)
    out.attrs["unit_matching"] = table.to_dict("records")
    return out


def _progress(items, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="session", file=sys.stderr, disable=not enabled, leave=False)


def apply_to_data(model, ds: xr.Dataset, ref: Reference, params: dict, settings: ApplySettings) -> xr.Dataset:
    """The applied.nc Dataset of one preprocessed session ``ds`` (from :func:`preprocess`)."""
    where = ds.attrs.get("session", "session")
    x = model_inputs(ds, model, where, neural_input=params["neural_input"], present_only=True)
    if not x:
        raise InputError(where, f"the session has none of the model's modalities {model.modalities}")
    out = ds.copy()
    out.attrs = {"session": where, "model_kind": model.config.kind, "modalities_present": list(x),
                 "preprocessing": {k: v for k, v in params.items() if v is not None},
                 "settings": dataclasses.asdict(settings), "reference": ref.where}
    n = ds.sizes["syllable"]
    if n == 0:
        out.attrs["note"] = "no syllables: nothing to embed"
        return out
    names, mean, var = predict.embeddings(model, x, settings.batch_size)
    out["embedding_mean"] = (("conditioning", "syllable", "latent"), mean)
    out["embedding_variance"] = (("conditioning", "syllable", "latent"), var)
    out.coords["conditioning"] = names
    out.coords["latent"] = np.arange(mean.shape[-1])
    _add_predictions(out, model, x, params, settings)
    own = "readin_split" in ds.coords  # the session's own units (apply_own_units): they keep their ids
    if "unit" in out.dims and not own:  # the model's units are the reference's (new neural data were checked against them)
        out.coords["unit"] = ref.ds["unit"].values
    _add_scores(out, ds, model, x, ref, params)
    # the reference has no data of a session's own units: its out-of-distribution check is its audio's
    _add_ood(out, model, {m: v for m, v in x.items() if not (own and m == "neural")}, ref, settings)
    return out


def _add_predictions(out: xr.Dataset, model, x, params: dict, settings: ApplySettings) -> None:
    """Each modality the model has, predicted from the session's other modality (cross-generation)."""
    neural_dims = DIMS[params["neural_input"]]
    for target, dims, name in (("neural", neural_dims, "predicted_counts"),
                               ("audio", DIMS["spectrogram"], "predicted_spectrogram")):
        given = tuple(m for m in x if m != target)
        if target not in model.modalities or not given:
            continue
        mean, sd = predict.sampled_prediction(model, x, given, target, n_samples=settings.n_samples,
                                              seed=settings.seed, batch_size=settings.batch_size)
        what = "expected spikes per bin" if target == "neural" else "spectrogram in [0, 1]"
        out[name] = (dims, mean.astype(np.float32), {"description": f"{what}: decoder mean averaged over "
                                                     f"posterior samples given {'+'.join(given)}"})
        out[f"{name}_sd"] = (dims, sd.astype(np.float32), {"description": "standard deviation over the samples"})
    _add_bin_coords(out, params)


def _add_bin_coords(out: xr.Dataset, params: dict) -> None:
    """Bin edges (s after onset) from the stored neural parameters, for sessions without counts."""
    if "bin" not in out.dims or "bin_start_s" in out.coords or not params.get("neural"):
        return
    p = params["neural"]
    edges = np.round(-p["pre_s"] + np.arange(out.sizes["bin"] + 1) * p["bin_s"], 12)
    out.coords["bin_start_s"] = ("bin", edges[:-1])
    out.coords["bin_end_s"] = ("bin", edges[1:])


def _add_scores(out: xr.Dataset, ds: xr.Dataset, model, x, ref: Reference, params: dict) -> None:
    """Where the predicted modality is present after all: the analysis' cross-prediction metrics."""
    from mmneuro.analysis import crosspred

    tables = []
    # a session with its own units is scored on the test syllables of its read-in fit, against its
    # units' mean rates on the fitted (train) ones
    split = ds["readin_split"].values if "readin_split" in ds.coords else None
    rows = np.ones(ds.sizes["syllable"], bool) if split is None else split == "test"
    if split is not None:
        out.attrs["scored_on"] = f"the {int(rows.sum())} test syllables of the read-in fit"
    enough = split is None or rows.sum() > 1
    if "predicted_counts" in out and "neural" in x and enough:
        latency = (params.get("neural") or {}).get("latency_s", DEFAULT_LATENCY_S)
        counts, exposure, _ = window_counts(ds, params["neural_input"], latency)
        if split is None:
            ref_counts, ref_exposure, _ = window_counts(ref.ds, params["neural_input"], latency)
        else:
            ref_counts, ref_exposure = counts[split == "train"], exposure[split == "train"]
        pred = out["predicted_counts"].values.astype(np.float64)
        preds = {"model": pred.reshape(len(pred), pred.shape[1], -1).sum(-1)[rows],
                 "mean_rate": crosspred.mean_rate_baseline(ref_counts, ref_exposure, exposure)[rows]}
        table = crosspred.score_table(counts[rows], preds, out["unit"].values)
        tables.append(table)
        for metric in ("pearson_r", "deviance_explained"):
            wide = table.pivot(index="method", columns="unit", values=metric).loc[list(preds), out["unit"].values]
            out[metric] = (("predictor", "unit"), wide.values)
        out.coords["predictor"] = list(preds)  # not "method": a keyword of xarray.sel
    if "predicted_spectrogram" in out and "audio" in x and enough:
        images = ds["spectrogram"].transpose("syllable", "freq", "time").values[rows]
        mean_image = ref.x["audio"][:, 0].mean(0)
        tables.append(crosspred.image_error_rows(images, {
            "model": out["predicted_spectrogram"].values[rows],
            "mean_spectrogram": np.broadcast_to(mean_image, images.shape)}))
    if tables:
        summary = crosspred.summary(pd.concat(tables, ignore_index=True))
        out.attrs["crosspred_summary"] = summary.replace({np.nan: None}).to_dict("records")


def _add_ood(out: xr.Dataset, model, x, ref: Reference, settings: ApplySettings) -> None:
    scores = ood.syllable_scores(model, x, settings.batch_size)
    reference = ood.syllable_scores(model, {m: ref.x[m] for m in x}, settings.batch_size)
    pct, flags, rows = ood.session_summary(scores, reference, settings.flag_percentile,
                                           settings.session_flag_fraction)
    names = list(scores)
    out["ood_score"] = (("score", "syllable"), np.stack([scores[k] for k in names]))
    out["ood_percentile"] = (("score", "syllable"), np.stack([pct[k] for k in names]))
    out["ood_flag"] = ("syllable", flags.astype(np.int8))
    out.coords["score"] = names
    out.attrs["ood_summary"] = rows
    out.attrs["session_flagged"] = int(any(r["session_flagged"] for r in rows))


def write_session(result: xr.Dataset, folder: Path, model_dir) -> Path:
    """``folder/applied.nc`` and ``folder/report.html``, the folder renamed into place at the end."""
    import shutil

    from mmneuro.apply.report import session_report

    with atomic_path(folder) as tmp:
        tmp.mkdir()
        write_netcdf(result, tmp / APPLIED_FILE)
        (tmp / REPORT_FILE).write_text(session_report(result, model_dir), encoding="utf-8")
        if "unit_matching" in result.attrs:
            matching_table(result).to_csv(tmp / MATCHING_FILE, index=False)
        if folder.exists():
            shutil.rmtree(folder)
    return folder


def matching_table(result: xr.Dataset) -> pd.DataFrame:
    """The ``unit_matching`` of an applied session with its own units (columns as the analysis'
    unit_matching.csv: session_a/unit_a a training sort's unit, session_b/unit_b the session's;
    self_score, confident)."""
    from mmneuro.analysis.multisession import MATCHING_COLUMNS

    return pd.DataFrame(_json_or_value(result.attrs["unit_matching"]), columns=[*MATCHING_COLUMNS, "self_score", "confident"])


def summary_line(result: xr.Dataset) -> str:
    """One line per session for the CLI: syllables, modalities, OOD verdict, scores if any."""
    rows, scores, present = (_json_or_value(result.attrs.get(k, "[]"))
                             for k in ("ood_summary", "crosspred_summary", "modalities_present"))
    flagged = "FLAGGED out of distribution" if result.attrs.get("session_flagged") else "in distribution"
    r = ", ".join(f"{s['method']} r={s['pearson_r']:.3f}" for s in scores if s.get("pearson_r") is not None)
    return (f"{result.attrs['session']}: {result.sizes['syllable']} syllables, "
            f"{'+'.join(present)}; {flagged}"
            + (f" ({max(r_['fraction_flagged'] for r_ in rows):.0%} of syllables flagged)" if rows else "")
            + (f"; {r}" if r else "")
            + ("; own units: {} matched to training units ({} confidently)".format(
                *matching_table(result)[["matched", "confident"]].sum().astype(int)) if "unit_matching" in result.attrs else ""))


def _json_or_value(value):
    return json.loads(value) if isinstance(value, str) else value
