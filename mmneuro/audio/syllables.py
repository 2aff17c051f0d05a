"""One session's syllables as the ``syllables.nc`` Dataset of docs/data_contract.md.

Syllables come from the segmenter or from an annotation CSV (onset_s, offset_s[, syllable]);
each gets a spectrogram image and its acoustic features, read back from the WAV one syllable at a
time (:mod:`mmneuro.audio.measure`). :func:`syllable_dataset` collects them in memory;
:func:`mmneuro.audio.netcdf_stream.write_syllables` writes them to the file batch by batch.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.audio.features import FEATURES
from mmneuro.audio.measure import Batch, iter_measurements
from mmneuro.audio.presets import resolve_params
from mmneuro.audio.segment import segment_wav
from mmneuro.audio.spectrogram import image_freq_hz, image_time_s
from mmneuro.audio.stft import FrameGrid, frame_grid, noise_floor_db
from mmneuro.audio.wav import WavInfo, open_wav
from mmneuro.errors import InputError, check_session_id

TABLE_COLUMNS = ("syllable", "session", "onset_s", "offset_s", "duration_s", *FEATURES)
SPECTROGRAM_DIMS = ("syllable", "freq", "time")


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


@dataclass(frozen=True)
class SyllablePlan:
    """A session's syllables before measuring them: the recording, their times and ids, the noise floor."""

    wav: WavInfo
    session: str
    params: dict
    grid: FrameGrid
    ids: np.ndarray  # str, one per syllable
    onset_s: np.ndarray  # float64, audio clock, ascending
    offset_s: np.ndarray
    floor_db: np.ndarray  # per band bin, dB

    def measurements(self, progress: bool = False) -> Iterator[Batch]:
        """Images and features of every syllable, batch by batch (see :func:`iter_measurements`)."""
        return iter_measurements(self.wav, self.onset_s, self.offset_s, self.floor_db, self.grid,
                                 self.params, progress)

    def coords(self) -> dict[str, tuple[str, np.ndarray]]:
        """The syllables.nc coordinates known before measuring: name -> (dim, values)."""
        return {
            "syllable": ("syllable", self.ids),
            "session": ("syllable", np.array([self.session] * len(self.ids), dtype=str)),
            "onset_s": ("syllable", self.onset_s),
            "offset_s": ("syllable", self.offset_s),
            "duration_s": ("syllable", self.offset_s - self.onset_s),
            "freq_hz": ("freq", image_freq_hz(self.params)),
            "time_s": ("time", image_time_s(self.params)),
        }

    def attrs(self) -> dict:
        """The syllables.nc global attributes (params as a JSON string)."""
        return {"params": json.dumps(self.params, sort_keys=True), "sample_rate_hz": self.wav.sample_rate_hz,
                "audio_path": str(self.wav.path), "session": self.session,
                "audio_duration_s": self.wav.duration_s}


def plan_syllables(wav_path, session: str, params: dict | None = None, annotations=None,
                   progress: bool = False) -> SyllablePlan:
    """Check the inputs, then segment the recording (or take ``annotations``) and estimate its noise floor.

    Arguments as :func:`syllable_dataset`. Zero syllables give a valid empty plan and a warning.
    """
    check_session_id(session)
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
        warnings.warn(f"{wav.path}: no syllables found; writing an empty syllable set", stacklevel=3)
    ids = (table["syllable"].to_numpy(str) if "syllable" in table
           else np.array([f"{session}-{i:05d}" for i in range(len(table))], dtype=str))
    return SyllablePlan(wav, str(session), params, grid, ids, table["onset_s"].to_numpy(np.float64),
                        table["offset_s"].to_numpy(np.float64), floor_db)


def syllable_dataset(wav_path, session: str, params: dict | None = None, annotations=None,
                     progress: bool = False) -> xr.Dataset:
    """The syllables.nc Dataset of one session, in memory (``write_syllables`` streams it to disk instead).

    wav_path: WAV recording; session: id ([A-Za-z0-9_.-]+); params: from :func:`resolve_params`
    or overrides of the default preset; annotations: None (segment the audio), a CSV path or a
    DataFrame with onset_s, offset_s (s). Zero syllables give a valid empty Dataset and a warning.
    """
    plan = plan_syllables(wav_path, session, params, annotations, progress)
    n = len(plan.ids)
    images = np.zeros((n, plan.params["n_freq"], plan.params["n_time"]), dtype=np.float32)
    features = {name: np.zeros(n) for name in FEATURES}
    for batch in plan.measurements(progress):
        images[batch.start:batch.stop] = batch.images
        for name in FEATURES:
            features[name][batch.start:batch.stop] = batch.features[name]
    coords = plan.coords()
    coords.update({name: ("syllable", values) for name, values in features.items()})
    return xr.Dataset({"spectrogram": (SPECTROGRAM_DIMS, images)}, coords=coords, attrs=plan.attrs())


def syllable_table(ds: xr.Dataset) -> pd.DataFrame:
    """The per-syllable coordinates of a syllables Dataset as a table (one row per syllable)."""
    return pd.DataFrame({name: ds[name].to_numpy() for name in TABLE_COLUMNS})
