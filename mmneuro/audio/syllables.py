"""One session's syllables as the ``syllables.nc`` Dataset of docs/data_contract.md.

Syllables come from the segmenter or from an annotation CSV (onset_s, offset_s[, syllable]);
each gets a spectrogram image and its acoustic features, read back from the WAV one syllable at a
time so memory holds only the images themselves.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm import tqdm

from mmneuro.audio.features import FEATURES, syllable_features
from mmneuro.audio.presets import resolve_params
from mmneuro.audio.segment import segment_wav
from mmneuro.audio.spectrogram import column_times_s, image_freq_hz, image_time_s, row_interpolation, syllable_image
from mmneuro.audio.stft import frame_grid, noise_floor_db
from mmneuro.audio.wav import WavInfo, open_wav, read_span
from mmneuro.errors import InputError

SESSION_ID = re.compile(r"[A-Za-z0-9_.-]+")
TABLE_COLUMNS = ("syllable", "session", "onset_s", "offset_s", "duration_s", *FEATURES)


def read_annotations(csv_path: str | Path) -> pd.DataFrame:
    """Syllables from a CSV with columns onset_s, offset_s (s, audio clock) and optionally syllable.

    Returns them sorted by onset; bad files or values raise InputError naming the file.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(csv_path, "annotation file not found")
    try:
        table = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(csv_path, f"not a readable CSV ({err})") from None
    return _check_annotations(table, csv_path)


def _check_annotations(table: pd.DataFrame, where, duration_s: float | None = None) -> pd.DataFrame:
    missing = {"onset_s", "offset_s"} - set(table.columns)
    if missing:
        raise InputError(where, f"missing column(s) {sorted(missing)}; need onset_s, offset_s")
    out = pd.DataFrame()
    for column in ("onset_s", "offset_s"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or not np.isfinite(values).all():
            raise InputError(where, f"column {column} has non-numeric or missing values")
        out[column] = values.astype(np.float64)
    if "syllable" in table.columns:
        out["syllable"] = table["syllable"].astype(str)
        if out["syllable"].duplicated().any():
            raise InputError(where, "column syllable has duplicate ids")
    bad = (out["onset_s"] < 0) | (out["offset_s"] <= out["onset_s"])
    if duration_s is not None:
        bad |= out["offset_s"] > duration_s + 1e-9
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        limit = "" if duration_s is None else f" within the recording's {duration_s:.3f} s"
        raise InputError(where, f"row {row}: need 0 <= onset_s < offset_s{limit} "
                                f"(got {out['onset_s'].iloc[row]}, {out['offset_s'].iloc[row]})")
    return out.sort_values("onset_s", kind="stable").reset_index(drop=True)


def syllable_dataset(wav_path, session: str, params: dict | None = None, annotations=None,
                     progress: bool = False) -> xr.Dataset:
    """The syllables.nc Dataset of one session.

    wav_path: WAV recording; session: id ([A-Za-z0-9_.-]+); params: from :func:`resolve_params`
    or overrides of the default preset; annotations: None (segment the audio), a CSV path or a
    DataFrame with onset_s, offset_s (s). Zero syllables give a valid empty Dataset and a warning.
    """
    if not SESSION_ID.fullmatch(str(session)):
        raise InputError(f"session {session!r}", "session ids may contain only letters, digits, _ . -")
    params = resolve_params(overrides=params)
    wav = open_wav(wav_path, params["channel"], params["max_freq_hz"])
    grid = frame_grid(wav.sample_rate_hz, params)
    if annotations is None:
        table, floor_db = segment_wav(wav, params, progress)
    else:
        where = annotations if isinstance(annotations, (str, Path)) else "annotations"
        raw = read_annotations(annotations) if isinstance(annotations, (str, Path)) else annotations
        table = _check_annotations(raw, where, wav.duration_s)
        floor_db = noise_floor_db(wav, grid, params)
    if len(table) == 0:
        warnings.warn(f"{wav.path}: no syllables found; writing an empty syllable set", stacklevel=2)
    ids = (table["syllable"].to_numpy(str) if "syllable" in table
           else np.array([f"{session}-{i:05d}" for i in range(len(table))], dtype=str))
    images, features = _measure(wav, table, floor_db, grid, params, progress)
    return _to_dataset(wav, session, params, ids, table, images, features)


def _measure(wav: WavInfo, table: pd.DataFrame, floor_db, grid, params, progress):
    """Images (n, n_freq, n_time) and feature columns for every syllable of ``table``."""
    rows = row_interpolation(grid, params)
    images = np.zeros((len(table), params["n_freq"], params["n_time"]), dtype=np.float32)
    features = {name: np.zeros(len(table)) for name in FEATURES}
    sr, margin = wav.sample_rate_hz, grid.nperseg
    spans = zip(table["onset_s"].to_numpy(), table["offset_s"].to_numpy())
    for i, (onset, offset) in enumerate(tqdm(spans, total=len(table), desc=f"spectrograms {wav.path.name}",
                                             unit="syll", file=sys.stderr, disable=not progress, leave=False)):
        columns = column_times_s(onset, offset, params)
        first = int(np.floor(min(columns[0], onset) * sr)) - margin
        last = int(np.ceil(max(columns[-1], offset) * sr)) + margin
        samples = read_span(wav, first, last)
        images[i] = syllable_image(samples, first, onset, offset, floor_db, rows, grid, params)
        for name, value in syllable_features(samples, first, onset, offset, floor_db, grid, params).items():
            features[name][i] = value
    return images, features


def _to_dataset(wav: WavInfo, session, params, ids, table, images, features) -> xr.Dataset:
    onset = table["onset_s"].to_numpy(np.float64)
    offset = table["offset_s"].to_numpy(np.float64)
    per_syllable = {"onset_s": onset, "offset_s": offset, "duration_s": offset - onset, **features}
    coords = {
        "syllable": ("syllable", ids),
        "session": ("syllable", np.array([session] * len(ids), dtype=str)),
        **{name: ("syllable", np.asarray(values, np.float64)) for name, values in per_syllable.items()},
        "freq_hz": ("freq", image_freq_hz(params)),
        "time_s": ("time", image_time_s(params)),
    }
    attrs = {"params": json.dumps(params, sort_keys=True), "sample_rate_hz": wav.sample_rate_hz,
             "audio_path": str(wav.path), "session": session, "audio_duration_s": wav.duration_s}
    return xr.Dataset({"spectrogram": (("syllable", "freq", "time"), images)}, coords=coords, attrs=attrs)


def syllable_table(ds: xr.Dataset) -> pd.DataFrame:
    """The per-syllable coordinates of a syllables Dataset as a table (one row per syllable)."""
    return pd.DataFrame({name: ds[name].to_numpy() for name in TABLE_COLUMNS})
