"""Dataset assembly: per-session ``syllables.nc`` + ``counts.nc`` -> one ``dataset.nc`` with a saved split.

Sessions are concatenated along ``syllable``. A session may lack a modality (an audio-only
recording): its missing variables are NaN and the ``has_audio`` / ``has_neural`` masks say so.
The train/val/test split is drawn per session (so every session is represented in every part)
from the seed, and saved in the file so all later stages use the same one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from mmneuro.errors import InputError, check_session_id
from mmneuro.io import read_netcdf

PER_SYLLABLE_COORDS = ("session", "onset_s", "offset_s")
DEFAULTS = {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0}  # the split's; config schema holds them equal


def assemble(
    sessions: list[tuple[str, str | Path | None, str | Path | None]],
    *,
    val_fraction: float = DEFAULTS["val_fraction"],
    test_fraction: float = DEFAULTS["test_fraction"],
    seed: int = DEFAULTS["seed"],
) -> xr.Dataset:
    """Read each session's syllables.nc and counts.nc and assemble them (:func:`assemble_parts`).

    sessions: (session id, syllables.nc path or None, counts.nc path or None) per session.
    Returns the ``dataset.nc`` Dataset of docs/data_contract.md.
    """
    parts = [(sid, _read(syl), _read(cnt)) for sid, syl, cnt in sessions]
    return assemble_parts(parts, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                          sources={sid: (syl, cnt) for sid, syl, cnt in sessions})


def _read(path) -> xr.Dataset | None:
    return read_netcdf(path) if path is not None else None


def assemble_parts(
    sessions: list[tuple[str, xr.Dataset | None, xr.Dataset | None]],
    *,
    val_fraction: float = DEFAULTS["val_fraction"],
    test_fraction: float = DEFAULTS["test_fraction"],
    seed: int = DEFAULTS["seed"],
    sources: dict | None = None,
) -> xr.Dataset:
    """Join and concatenate sessions held in memory.

    sessions: (session id, syllables Dataset or None, counts Dataset or None) per session, as the
    audio and neural stages return them. val_fraction/test_fraction: share of each session's
    syllables in the val/test split, drawn from ``seed``. sources: session id -> (syllables,
    counts) names used in error messages (default: the session id).
    Returns the ``dataset.nc`` Dataset of docs/data_contract.md.
    """
    if not sessions:
        raise InputError("dataset", "no sessions to assemble")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise InputError("dataset", f"{name} must lie in [0, 1) (got {value})")
    ids = [check_session_id(sid) for sid, _, _ in sessions]
    dupes = sorted({sid for sid in ids if ids.count(sid) > 1})
    if dupes:
        raise InputError("dataset", f"session(s) given more than once: {', '.join(dupes)}")
    if val_fraction + test_fraction >= 1:
        raise InputError("dataset", f"val_fraction + test_fraction must be < 1 (got {val_fraction + test_fraction})")
    sources = sources or {}
    parts = [_join_session(sid, syl, cnt, *sources.get(sid, (sid, sid))) for sid, syl, cnt in sessions]
    _check_consistent(parts, sessions, "unit", "counts")
    _check_consistent(parts, sessions, "freq_hz", "spectrogram")
    parts = _fill_missing_modalities(parts)
    rng = np.random.default_rng(seed)
    for part in parts:
        part.coords["split"] = ("syllable", _split_labels(part.sizes["syllable"], val_fraction, test_fraction, rng))
    ds = xr.concat(parts, dim="syllable", data_vars="all", coords="minimal", compat="equals", join="exact")
    if "val" not in ds["split"].values:
        warnings.warn(f"dataset: no validation syllables ({ds.sizes['syllable']} syllables, val_fraction "
                      f"{val_fraction}); training will select and early-stop on the training loss", stacklevel=2)
    ds.attrs = {
        "params": {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed},
        "sessions": [sid for sid, _, _ in sessions],
        "audio_params": parts[0].attrs.get("audio_params", ""),
        "neural_params": parts[0].attrs.get("neural_params", ""),
    }
    return ds


def _join_session(session: str, syl: xr.Dataset | None, cnt: xr.Dataset | None, syllables_path,
                  counts_path) -> xr.Dataset:
    if syl is None and cnt is None:
        raise InputError(session, "session has neither syllables.nc nor counts.nc")
    if syl is not None and "spectrogram" in syl:
        # the audio stage writes images in [0, 1]; NaN there means a broken file, not a missing modality
        nan_rows = np.isnan(syl["spectrogram"].values).reshape(syl.sizes["syllable"], -1).any(1)
        if nan_rows.any():
            raise InputError(syllables_path, f"{int(nan_rows.sum())} of {nan_rows.size} spectrograms contain NaN "
                                             f"(first: syllable {syl['syllable'].values[np.argmax(nan_rows)]})")
    if cnt is not None:
        # Unit QC (firing rate, ...) differs between sessions; it stays in each counts.nc.
        cnt = cnt.drop_vars([c for c in cnt.coords if cnt[c].dims == ("unit",) and c != "unit"])
    if cnt is None:
        # An audio-only session: the syllable table is the audio stage's.
        ds = syl[["spectrogram"]].copy()
    elif syl is None:
        ds = cnt[[v for v in ("counts", "total_counts") if v in cnt]].copy()
    else:
        missing = np.setdiff1d(cnt["syllable"].values, syl["syllable"].values)
        if missing.size:
            raise InputError(counts_path, f"{missing.size} syllable id(s) not in {syllables_path}, e.g. {missing[0]}")
        syl = syl.sel(syllable=cnt["syllable"].values)
        ds = xr.merge(
            [syl[["spectrogram"]], cnt[[v for v in ("counts", "total_counts") if v in cnt]].drop_vars(
                [c for c in cnt.coords if c in syl.coords and c != "syllable"])],
            compat="override",
        )
    ds.coords["has_audio"] = ("syllable", np.full(ds.sizes["syllable"], syl is not None, dtype=np.int8))
    ds.coords["has_neural"] = ("syllable", np.full(ds.sizes["syllable"], cnt is not None, dtype=np.int8))
    ds.coords["session"] = ("syllable", np.full(ds.sizes["syllable"], session, dtype=object))
    ds.attrs = {
        "audio_params": syl.attrs.get("params", "") if syl is not None else "",
        "neural_params": cnt.attrs.get("params", "") if cnt is not None else "",
    }
    return ds


def _check_consistent(parts, sessions, coord: str, var: str) -> None:
    """Sessions combined into one model must share units (and spectrogram frequency axes)."""
    ref = next((p for p in parts if var in p), None)
    if ref is None:
        return
    for part, (sid, _, _) in zip(parts, sessions):
        if var in part and not np.array_equal(part[coord].values, ref[coord].values):
            first = sessions[parts.index(ref)][0]
            raise InputError(
                sid, f"its {coord} values differ from session {first}'s; sessions in one dataset must share them"
            )


def _fill_missing_modalities(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """Give every part every variable (NaN where a modality is absent) so they concatenate."""
    templates = {v: next(p[v] for p in parts if v in p) for v in ("spectrogram", "counts", "total_counts")
                 if any(v in p for p in parts)}
    filled = []
    for part in parts:
        part = part.copy()
        for name, template in templates.items():
            if name not in part:
                shape = (part.sizes["syllable"],) + template.shape[1:]
                dims = template.dims
                coords = {d: template[d] for d in dims[1:] if d in template.coords}
                part[name] = xr.DataArray(np.full(shape, np.nan, dtype=np.float32), dims=dims, coords=coords)
            elif name in ("counts", "total_counts") and any(name not in p for p in parts):
                part[name] = part[name].astype(np.float32)
        filled.append(part)
    return filled


def _split_labels(n: int, val_fraction: float, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    labels = np.array(["train"] * (n - n_val - n_test) + ["val"] * n_val + ["test"] * n_test, dtype=object)
    return labels[rng.permutation(n)]
