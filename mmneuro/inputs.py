"""Model inputs from a dataset.nc Dataset, batches, and the spike-count window each syllable is scored on.

One place for what training, the analysis and ``apply`` feed a model: ``audio`` (N, 1, F, T) from
``spectrogram``; ``neural`` (N, U, B) from ``counts`` or (N, U) from ``total_counts``; float32.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.neural.binning import BinParams

DEFAULT_LATENCY_S = BinParams.latency_s  # the neural stage's default, used if dataset.nc does not record it
DIMS = {"spectrogram": ("syllable", "freq", "time"), "counts": ("syllable", "unit", "bin"),
        "total_counts": ("syllable", "unit")}


def variable(name: str, neural_input: str) -> str:
    """The dataset variable modality ``name`` is read from (``neural_input``: counts | total_counts)."""
    if name == "audio":
        return "spectrogram"
    if name == "neural":
        return neural_input
    raise InputError("modalities", f"unknown modality {name!r}; expected audio or neural")


def neural_input_of(model) -> str:
    """The neural variable a model was trained on: the config's record (mmneuro.train writes it),
    else what the expert's shape says ((U, B): counts, (U,): total_counts)."""
    recorded = (getattr(model.config, "preprocessing", None) or {}).get("neural_input")
    if recorded:
        return recorded
    return "counts" if len(model.experts["neural"].shape) == 2 else "total_counts"


def modality_array(ds: xr.Dataset, name: str, neural_input: str, where: str) -> np.ndarray:
    """One modality's float32 array, dims in the model's order (audio gets a channel axis); an
    InputError naming ``where`` if the variable is missing or has other dims."""
    var = variable(name, neural_input)
    if var not in ds:
        raise InputError(where, f"variable {var!r} missing (needed for modality {name!r})")
    if set(ds[var].dims) != set(DIMS[var]):
        raise InputError(where, f"{var} has dims {tuple(ds[var].dims)}, expected {DIMS[var]}")
    values = ds[var].transpose(*DIMS[var]).values.astype(np.float32)
    return values[:, None] if name == "audio" else values


def model_inputs(ds: xr.Dataset, model, where: str = "dataset", *, neural_input: str | None = None,
                 present_only: bool = False) -> dict[str, np.ndarray]:
    """The inputs of every modality of a trained ``model`` (a MultimodalVAE) from ``ds``.

    neural_input: default :func:`neural_input_of`. present_only: skip a modality unless every
    syllable has it (``has_<m>`` all set; ``apply``'s sessions may lack one). A shape the model was
    not trained on is an InputError naming ``where``.
    """
    neural_input = neural_input or ("neural" in model.modalities and neural_input_of(model)) or "counts"
    out = {}
    for name in model.modalities:
        if present_only and not (f"has_{name}" in ds.coords and ds[f"has_{name}"].values.all()):
            continue
        arr = modality_array(ds, name, neural_input, where)
        shape = tuple(model.experts[name].shape)
        if tuple(arr.shape[1:]) != shape:
            raise InputError(where, f"{name} data have shape {tuple(arr.shape[1:])} but the model was trained on {shape}")
        out[name] = arr
    return out


def training_arrays(ds: xr.Dataset, neural_input: str, modalities: tuple[str, ...], where: str) -> dict[str, np.ndarray]:
    """Inputs for training, before any model exists: missing samples (has_<m> = 0) become NaN rows,
    which the model treats as absent; values are checked (spectrogram in [0, 1], non-negative
    integer counts, not NaN everywhere), each failure an InputError naming ``where``."""
    arrays = {}
    for name in modalities:
        values = modality_array(ds, name, neural_input, where)
        var = variable(name, neural_input)
        if f"has_{name}" in ds.coords:
            values[~ds[f"has_{name}"].values.astype(bool)] = np.nan
        finite = values[np.isfinite(values)]
        if name == "audio" and finite.size and (finite.min() < 0 or finite.max() > 1):
            raise InputError(where, f"spectrogram values must lie in [0, 1], found [{finite.min():.3g}, {finite.max():.3g}]")
        if name == "neural" and finite.size and (finite.min() < 0 or np.any(finite != np.round(finite))):
            raise InputError(where, f"{var} must be non-negative integer counts")
        if values.size and not np.isfinite(values).any():
            raise InputError(where, f"{var} is NaN (missing) for every syllable; train a model without "
                                    f"modality {name!r} (modalities=...) or check the dataset")
        arrays[name] = values
    return arrays


# modalities whose samples may be partly observed: a neural sample with NaN for some units (another
# session's sort) is present; any other sample with a NaN is missing as a whole
PARTIAL = ("neural",)


def present_rows(name: str, finite):
    """Which samples (rows) of modality ``name`` are present, from ``finite`` (N, E) bool (numpy or
    torch): any element finite for a partial modality (:data:`PARTIAL`), all elements otherwise."""
    return finite.any(1) if name in PARTIAL else finite.all(1)


def batches(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def latency_s(ds: xr.Dataset) -> float:
    """The neural stage's response latency (s) recorded in dataset.nc (``neural_params``), else the default."""
    from mmneuro.io import json_attr

    try:
        params = json_attr(ds, "neural_params") or {}
    except (KeyError, ValueError, TypeError):
        params = {}
    return params.get("latency_s", DEFAULT_LATENCY_S)


# the spike windows of window_counts, by neural input, in words
SPIKE_WINDOWS = {"counts": "binned window around onset", "total_counts": "window from onset to offset + latency"}


def window_counts(ds: xr.Dataset, neural_input: str, latency: float):
    """Spikes per syllable window (N, U) float64, the window's length (N,) in s, and its (start, end)
    relative to onset (s): the binned window (``counts``) or onset -> offset + ``latency`` (``total_counts``)."""
    n = ds.sizes["syllable"]
    if neural_input == "counts":
        counts = ds["counts"].sum("bin").transpose("syllable", "unit").values.astype(np.float64)
        start, end = float(ds["bin_start_s"].values[0]), float(ds["bin_end_s"].values[-1])
        return counts, np.full(n, end - start), (np.full(n, start), np.full(n, end))
    counts = ds["total_counts"].transpose("syllable", "unit").values.astype(np.float64)
    end = ds["offset_s"].values - ds["onset_s"].values + latency
    return counts, end, (np.zeros_like(end), end)
