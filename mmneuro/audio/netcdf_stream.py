"""Write a session's syllables.nc while measuring it: each batch of images goes to disk, then is dropped.

Segmentation gives the number of syllables before any image is made, so the file's dimensions
are fixed up front and the images are written into the (contiguous, as xarray writes it)
``spectrogram`` variable batch by batch: peak memory does not grow with the number of syllables.
The layout is the one ``mmneuro.io.write_netcdf(syllable_dataset(...))`` writes (same variables,
dtypes, dimension ids, ``_FillValue`` and ``coordinates`` attributes; tested), inside
``mmneuro.io.atomic_path`` so a failure leaves no file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import pandas as pd

from mmneuro.audio.features import FEATURES
from mmneuro.audio.syllables import SPECTROGRAM_DIMS, TABLE_COLUMNS, plan_syllables
from mmneuro.io import atomic_path


@dataclass(frozen=True)
class WrittenSyllables:
    """What :func:`write_syllables` wrote: the file, the syllable table and the audio's length."""

    path: Path
    table: pd.DataFrame  # TABLE_COLUMNS, one row per syllable
    audio_duration_s: float


def write_syllables(wav_path, session: str, out_path, params: dict | None = None, annotations=None,
                    progress: bool = False) -> WrittenSyllables:
    """Segment (or take ``annotations``), measure and write ``out_path`` (syllables.nc) atomically.

    Arguments as :func:`mmneuro.audio.syllable_dataset`; reading the file back gives that Dataset.
    """
    plan = plan_syllables(wav_path, session, params, annotations, progress)
    coords = plan.coords()
    features = {name: np.zeros(len(plan.ids)) for name in FEATURES}
    with atomic_path(out_path) as tmp:
        with h5netcdf.File(tmp, "w") as f:
            f.dimensions = {"syllable": len(plan.ids), "freq": plan.params["n_freq"],
                            "time": plan.params["n_time"]}
            for key, value in plan.attrs().items():
                # xarray stores numeric attributes as 1-element arrays.
                f.attrs[key] = value if isinstance(value, str) else np.atleast_1d(value)
            for name, (dim, values) in coords.items():
                _create(f, name, (dim,), values)
            spectrogram = _create(f, "spectrogram", SPECTROGRAM_DIMS, np.float32)
            # Non-dimension coordinates are listed on the data variable, as xarray's CF encoder does.
            spectrogram.attrs["coordinates"] = " ".join(
                sorted(name for name in [*coords, *FEATURES] if name not in SPECTROGRAM_DIMS))
            for batch in plan.measurements(progress):
                spectrogram[batch.start:batch.stop] = batch.images
                for name in FEATURES:
                    features[name][batch.start:batch.stop] = batch.features[name]
            for name in FEATURES:  # a few numbers per syllable: written once at the end
                _create(f, name, ("syllable",), features[name])
    columns = {name: values for name, (_, values) in coords.items()} | features
    table = pd.DataFrame({name: columns[name] for name in TABLE_COLUMNS})
    return WrittenSyllables(Path(out_path), table, plan.wav.duration_s)


def _create(f: h5netcdf.File, name: str, dims: tuple[str, ...], data_or_dtype):
    """A variable as xarray's h5netcdf backend creates it: vlen str for text (no fill value),
    NaN ``_FillValue`` for floats."""
    data = None if isinstance(data_or_dtype, type) else np.asarray(data_or_dtype)
    dtype = np.dtype(data_or_dtype if data is None else data.dtype)
    if dtype.kind == "U":
        return f.create_variable(name, dims, dtype=h5py.string_dtype(), data=data.astype(object))
    return f.create_variable(name, dims, dtype=dtype, data=data, fillvalue=dtype.type(np.nan))
