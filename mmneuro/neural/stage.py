"""The neural stage as one function: a Session's spike-sorted units + its syllables -> counts.nc Dataset.

Used by ``mmneuro neural``, ``mmneuro.preprocess`` and ``mmneuro apply``, so the three bin the
same way. Parameters are the workflow config's ``neural`` section: ``labels`` plus the
:class:`~mmneuro.neural.binning.BinParams` fields, whose defaults are declared there only.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.neural.binning import BinParams, bin_counts

DEFAULT_LABELS = ("good",)  # sorter labels kept unless the config says otherwise
BIN_FIELDS = tuple(f.name for f in dataclasses.fields(BinParams))
PARAM_KEYS = ("labels", *BIN_FIELDS)


def neural_params(params: dict | None = None, where="neural") -> tuple[BinParams, tuple[str, ...]]:
    """The BinParams and unit labels of a ``neural`` parameter dict (missing keys: the defaults);
    labels may be a list or a comma-separated string. An unknown key is an InputError naming ``where``."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(PARAM_KEYS))
    if unknown:
        raise InputError(where, f"unknown neural parameter(s) {', '.join(unknown)}; allowed: {', '.join(PARAM_KEYS)}")
    labels = params.pop("labels", None) or DEFAULT_LABELS
    if isinstance(labels, str):
        labels = labels.split(",")
    labels = tuple(str(label).strip() for label in labels if str(label).strip())
    if not labels:
        raise InputError(where, "labels: no labels given")
    return BinParams(**params), labels


def session_counts(session, syllables: xr.Dataset | pd.DataFrame, params: dict | None = None, *,
                   reference_units: np.ndarray | None = None, progress: bool = False, workers: int = 1) -> xr.Dataset:
    """Spike counts of ``session`` (a :class:`mmneuro.config.Session` with neural data) around its syllables.

    syllables: the syllables.nc Dataset or a table with onset_s, offset_s (audio clock, s).
    params: the ``neural`` parameters (labels, pre_s, post_s, bin_s, latency_s in s, warp_bins).
    reference_units: unit ids a model was trained on; other units are an InputError.
    workers: threads counting units side by side (the same counts; bin_counts).
    Returns the counts.nc Dataset (mmneuro.neural.bin_counts).
    """
    from mmneuro.neural.readers import read_units
    from mmneuro.neural.sync import ClockFit, fit_clock

    bins, labels = neural_params(params)
    units = read_units(session.neural, session.neural_format, labels=labels)
    if reference_units is not None and not np.array_equal(units.unit_ids, reference_units):
        extra = sorted(set(units.unit_ids.tolist()) - set(reference_units.tolist()))
        missing = sorted(set(reference_units.tolist()) - set(units.unit_ids.tolist()))
        raise InputError(session.neural, f"{len(units)} units with labels {list(labels)}, but the model was trained on "
                                         f"{len(reference_units)} (missing {missing[:8]}, not in training {extra[:8]}); "
                                         "apply needs the same tracked units; for units sorted on their own "
                                         "mark the session `units: own` in the sessions table, or drop the neural data")
    if (session.sync_audio is None) != (session.sync_neural is None):
        raise InputError(session.session, "give both sync-pulse files (audio and neural) or neither")
    if session.sync_audio is not None:
        clock = fit_clock(load_pulses(session.sync_audio), load_pulses(session.sync_neural),
                          names=(str(session.sync_audio), str(session.sync_neural)))
    else:
        clock = ClockFit(session.clock_offset_s or 0.0, session.clock_drift or 0.0)
    return bin_counts(units, syllables, bins, clock, session=session.session, progress=progress, workers=workers)


def counts_qc(counts: xr.Dataset) -> pd.DataFrame:
    """The unit QC table (mmneuro.neural.qc.unit_qc's columns) that a counts.nc Dataset records."""
    qc = counts.attrs["qc"]
    return pd.DataFrame({"n_spikes": qc["n_spikes"], "firing_rate_hz": counts["firing_rate_hz"].values,
                         "isi_violation_fraction": counts["isi_violation_fraction"].values,
                         "n_outside": qc["n_outside_recording"]}, index=pd.Index(counts["unit"].values, name="unit"))


def load_pulses(path) -> np.ndarray:
    """Sync-pulse times (s) from an .npy file; an unreadable file is an InputError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array of pulse times ({err})") from err
