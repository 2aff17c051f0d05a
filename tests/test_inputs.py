"""mmneuro.inputs: the one builder of model inputs, batches and count windows."""

import numpy as np
import pytest
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.inputs import batches, model_inputs, training_arrays, window_counts


def _ds(n=5, units=3):
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"spectrogram": (("syllable", "time", "freq"), rng.uniform(0, 1, (n, 2, 4)).astype(np.float32)),
         "counts": (("syllable", "unit", "bin"), rng.poisson(2, (n, units, 2))),
         "total_counts": (("syllable", "unit"), rng.poisson(4, (n, units)))},
        coords={"onset_s": ("syllable", np.arange(n) * 1.0), "offset_s": ("syllable", np.arange(n) + 0.1),
                "bin_start_s": ("bin", [-0.1, 0.0]), "bin_end_s": ("bin", [0.0, 0.1]),
                "has_neural": ("syllable", [1, 1, 0, 1, 1])})


class _Model:  # what model_inputs reads of a MultimodalVAE
    modalities = ("audio", "neural")
    experts = {"audio": type("E", (), {"shape": [1, 4, 2]}), "neural": type("E", (), {"shape": [3, 2]})}
    config = type("C", (), {"preprocessing": {}})


def test_model_inputs_orders_dims_and_checks_shapes():
    ds = _ds()
    x = model_inputs(ds, _Model())
    assert x["audio"].shape == (5, 1, 4, 2) and x["neural"].shape == (5, 3, 2) and x["audio"].dtype == np.float32
    np.testing.assert_array_equal(x["audio"][:, 0], ds["spectrogram"].transpose("syllable", "freq", "time"))
    assert set(model_inputs(ds, _Model(), present_only=True)) == set()  # has_neural not all set, no has_audio
    with pytest.raises(InputError, match="here.nc: neural data have shape \\(3,\\) but the model was trained on"):
        model_inputs(ds, _Model(), "here.nc", neural_input="total_counts")


def test_training_arrays_mark_missing_rows_and_reject_bad_values():
    x = training_arrays(_ds(), "total_counts", ("audio", "neural"), "d.nc")
    assert np.isnan(x["neural"][2]).all() and np.isfinite(x["neural"][[0, 1, 3, 4]]).all()
    bad = _ds().assign(total_counts=lambda d: d["total_counts"] - 10)
    with pytest.raises(InputError, match="d.nc.*non-negative integer counts"):
        training_arrays(bad, "total_counts", ("neural",), "d.nc")


def test_window_counts_and_batches():
    ds = _ds()
    c, length, (start, end) = window_counts(ds, "counts", 0.02)
    np.testing.assert_array_equal(c, ds["counts"].sum("bin").values)
    assert np.allclose(length, 0.2) and np.allclose(start, -0.1) and np.allclose(end, 0.1)
    c, length, (start, end) = window_counts(ds, "total_counts", 0.02)
    assert np.allclose(length, 0.12) and (start == 0).all() and (end == length).all()
    assert batches(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
