"""Dataset assembly: per-session ``syllables.nc`` + ``counts.nc`` -> one ``dataset.nc`` with a saved split.

Sessions are concatenated along ``syllable``. A session may lack a modality (an audio-only
recording): its missing variables are NaN and the ``has_audio`` / ``has_neural`` masks say so.
Units: sessions sorted together (``units: shared``, the default) must have the same unit ids, and
the same id is the same neuron. A session sorted on its own (``units: own``, e.g. a chronic probe
sorted per day) keeps its own units: the ``unit`` dimension becomes the union of every sort's units,
numbered 0..U-1, with coordinates ``unit_session`` (the session whose sort it is; ``shared`` for the
units of the shared sort) and ``unit_id`` (the sorter's id), and a unit's counts are NaN on the
syllables of every other sort's sessions (:func:`recorded_units` says which units a session has).
The train/val/test split is drawn per session (so every session is represented in every part)
from the seed, and saved in the file so all later stages use the same one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from mmneuro.errors import InputError, check_session_id
from mmneuro.formats import UNIT_SORTS
from mmneuro.io import read_netcdf

PER_SYLLABLE_COORDS = ("session", "onset_s", "offset_s")
SHARED_SORT = "shared"  # unit_session of the units of the shared sort
DEFAULTS = {"val_fraction": 0.15, "test_fraction": 0.15, "seed": 0}  # the split's; config schema holds them equal


def assemble(
    sessions: list[tuple[str, str | Path | None, str | Path | None]],
    *,
    val_fraction: float = DEFAULTS["val_fraction"],
    test_fraction: float = DEFAULTS["test_fraction"],
    seed: int = DEFAULTS["seed"],
    units: dict[str, str] | None = None,
) -> xr.Dataset:
    """Read each session's syllables.nc and counts.nc and assemble them (:func:`assemble_parts`).

    sessions: (session id, syllables.nc path or None, counts.nc path or None) per session.
    units: session id -> ``shared`` | ``own`` (default shared). Returns the ``dataset.nc`` Dataset
    of docs/data_contract.md.
    """
    parts = [(sid, _read(syl), _read(cnt)) for sid, syl, cnt in sessions]
    return assemble_parts(parts, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                          sources={sid: (syl, cnt) for sid, syl, cnt in sessions}, units=units)


def _read(path) -> xr.Dataset | None:
    return read_netcdf(path) if path is not None else None


def assemble_parts(
    sessions: list[tuple[str, xr.Dataset | None, xr.Dataset | None]],
    *,
    val_fraction: float = DEFAULTS["val_fraction"],
    test_fraction: float = DEFAULTS["test_fraction"],
    seed: int = DEFAULTS["seed"],
    sources: dict | None = None,
    units: dict[str, str] | None = None,
) -> xr.Dataset:
    """Join and concatenate sessions held in memory.

    sessions: (session id, syllables Dataset or None, counts Dataset or None) per session, as the
    audio and neural stages return them. val_fraction/test_fraction: share of each session's
    syllables in the val/test split, drawn from ``seed``. sources: session id -> (syllables,
    counts) names used in error messages (default: the session id). units: session id ->
    ``shared`` (default) or ``own`` (sorted on its own; see the module docstring).
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
    sorts = _sorts(ids, units or {})
    shared = [i for i, sid in enumerate(ids) if sorts[sid] == SHARED_SORT]
    for var in ("counts", "total_counts"):
        _check_consistent([parts[i] for i in shared], [sessions[i] for i in shared], "unit", var)
    if set(sorts.values()) != {SHARED_SORT}:
        parts = _union_units(parts, [sorts[sid] for sid in ids])
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
    if set(sorts.values()) != {SHARED_SORT}:  # (absent otherwise: shared-unit datasets as before)
        ds.attrs["params"]["units"] = {sid: "own" if sorts[sid] == sid else "shared" for sid in ids}
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


def _sorts(ids: list[str], units: dict[str, str]) -> dict[str, str]:
    """Session id -> the sort its units belong to: its own id (``units: own``) or ``shared``."""
    unknown = sorted(set(units) - set(ids))
    if unknown:
        raise InputError("dataset", f"units given for session(s) not assembled: {', '.join(unknown)}")
    for sid, mode in units.items():
        if mode not in UNIT_SORTS:
            raise InputError(sid, f"units: {mode!r} is not one of {', '.join(UNIT_SORTS)}")
    if SHARED_SORT in ids and units.get(SHARED_SORT) == "own":
        raise InputError(SHARED_SORT, f"a session sorted on its own cannot be called {SHARED_SORT!r}")
    return {sid: sid if units.get(sid, "shared") == "own" else SHARED_SORT for sid in ids}


def _union_units(parts: list[xr.Dataset], sorts: list[str]) -> list[xr.Dataset]:
    """Put every part's neural variables on the union of all sorts' units (NaN where a unit is not
    in the part's sort), numbered 0..U-1 with ``unit_session`` and ``unit_id`` coordinates."""
    ids: dict[str, np.ndarray] = {}
    for part, sort in zip(parts, sorts):
        if "unit" in part.dims:
            ids.setdefault(sort, part["unit"].values)
    session = np.concatenate([np.full(len(v), k, dtype=object) for k, v in ids.items()])
    unit_id = np.concatenate(list(ids.values()))
    offsets = dict(zip(ids, np.cumsum([0] + [len(v) for v in ids.values()])))
    out = []
    for part, sort in zip(parts, sorts):
        if "unit" in part.dims:
            mine = np.arange(offsets[sort], offsets[sort] + len(ids[sort]))
            part = part.assign_coords(unit=mine).reindex(unit=np.arange(len(unit_id)))
            for var in ("counts", "total_counts"):
                if var in part:
                    part[var] = part[var].astype(np.float32)
            part = part.assign_coords(unit_session=("unit", session), unit_id=("unit", unit_id))
        out.append(part)
    return out


def recorded_units(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Session id -> the indices along ``unit`` of the units its sort recorded (all units unless
    sessions have their own sorts; none for an audio-only session)."""
    out = {}
    for sid in dict.fromkeys(ds["session"].values.tolist()):
        if "unit_session" in ds.coords:
            sort = sid if sid in set(ds["unit_session"].values.tolist()) else SHARED_SORT
            out[sid] = np.flatnonzero(ds["unit_session"].values == sort)
        else:
            out[sid] = np.arange(ds.sizes.get("unit", 0))
        rows = ds["session"].values == sid
        if "has_neural" in ds.coords and not ds["has_neural"].values[rows].any():
            out[sid] = out[sid][:0]
    return out


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
