"""Applying a model to a session with its own units (issue 20): only the new read-in and read-out are
fitted, deterministically; a model whose units are per-session sorts refuses shared-unit neural data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmneuro.dataset import assemble_parts
from mmneuro.errors import InputError
from mmneuro.synth.multiday import multiday_sessions
from tests.test_multisession import _model


@pytest.fixture(scope="module")
def days():
    """Planted days 1-2 (own sorts, one dataset), day 3 (its own dataset) and the truth."""
    parts, truth = multiday_sessions(0, n_syllables=100, per_band=4, n_freq=16, n_time=8)
    trained = assemble_parts(parts[:2], units={sid: "own" for sid, _, _ in parts[:2]})
    return trained, assemble_parts(parts[2:]), truth


@pytest.fixture(scope="module")
def model(days):
    """A tiny MoPoE trained on days 1-2 (5 s)."""
    from mmneuro.train import fit_model

    import warnings

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", RuntimeWarning)  # the tiny model's neural posterior collapses: not tested here
    config = {"kind": "mopoe", "latent_dim": 4, "epochs": 10, "min_steps": 0, "neural_input": "total_counts",
              "lr": 3e-3, "audio": {"channels": [4, 4], "hidden": [16]}, "neural": {"hidden": [16]}}
    return fit_model(days[0], config, progress=False).model


def test_readin_fits_only_the_new_units_parameters(days, model):
    from mmneuro.analysis.multisession import unit_parameters
    from mmneuro.apply.readin import fit_readin

    _, day3, _ = days
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit = fit_readin(model, day3, neural_input="total_counts", epochs=3, patience=3)
    again = fit_readin(model, day3, neural_input="total_counts", epochs=3, patience=3)
    state = fit.model.state_dict()
    assert fit.fitted == unit_parameters(fit.model) and len(fit.fitted) == 3  # read-in weight, read-out weight + bias
    for key, value in state.items():
        if key in fit.fitted:
            assert day3.sizes["unit"] in value.shape and value.abs().sum() > 0
        else:
            assert torch.equal(value, before[key]), key  # frozen: bitwise the trained model's
        assert torch.equal(value, again.model.state_dict()[key])  # same seed, same fit
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model itself untouched
    np.testing.assert_array_equal(fit.split, day3["split"].values.astype(str))  # a dataset's split is kept
    assert fit.metrics[-1]["epoch"] == 3 and "val_loss" in fit.metrics[0]


def test_readin_learns_the_new_units_from_audio(days, model):
    """Read-out rows fitted to new units predict them from audio on held-out syllables (the frozen
    latent carries the frequency the planted neurons are tuned to; the start, a constant rate per
    unit, has no correlation at all)."""
    from mmneuro.apply.readin import fit_readin

    _, day3, _ = days
    fit = fit_readin(model, day3, neural_input="total_counts", epochs=15)
    test = fit.split != "train"
    audio = torch.from_numpy(day3["spectrogram"].values[test][:, None].astype(np.float32))
    with torch.no_grad():
        pred = fit.model.predict({"audio": audio}, ["audio"], "neural").numpy()
    counts = day3["total_counts"].values[test]
    r = [np.corrcoef(pred[:, u], counts[:, u])[0, 1] for u in range(counts.shape[1])]
    assert np.nanmean(r) > 0.3, r


def test_a_model_of_own_sorts_asks_for_units_own(days, tmp_path):
    from mmneuro.apply.pipeline import Reference, _units_to_check
    from mmneuro.config import Session

    trained, _, _ = days
    model = _model(trained.sizes["unit"])
    ref = Reference(trained, {}, "dataset.nc", trained)
    session = Session("day3", audio=tmp_path / "a.wav", neural=tmp_path / "phy", neural_format="phy")
    with pytest.raises(InputError, match="units: own") as err:
        _units_to_check(session, model, ref)
    assert str(tmp_path / "phy") in str(err.value)
    from dataclasses import replace

    assert _units_to_check(replace(session, units="own"), model, ref) is None
    with pytest.raises(InputError, match="needs its audio"):  # before anything is written
        _units_to_check(replace(session, units="own", audio=None, syllables=tmp_path / "s.csv"), model, ref)


def test_new_units_are_matched_to_the_training_sorts(days, model):
    """The matching apply writes: each of the session's units against each training sort (the
    analysis' rule on the frozen rows and the fitted read-out); it follows the planted neurons
    (7 of the 7 shared ones here) where the same table with day 3's ids shuffled does not (1 of 7)."""
    from mmneuro.analysis.multisession import matching_recall
    from mmneuro.apply.readin import fit_readin, match_to_training

    trained, day3, truth = days
    fit = fit_readin(model, day3.assign_attrs(session="day3"), neural_input="total_counts", epochs=15)
    table = match_to_training(model, fit.model, trained, day3.assign_attrs(session="day3"), fit.split, "total_counts")
    assert set(table["session_a"]) == {"day1", "day2"} and set(table["session_b"]) == {"day3"}
    assert {"self_score", "confident"} <= set(table.columns)
    for sid in ("day1", "day2"):
        assert set(table.loc[table["session_a"] == sid, "unit_a"]) <= set(truth["units"][sid])
    ids = day3["unit"].values
    assert set(table["unit_b"]) <= set(ids.tolist())
    assert len(table) == sum(min(len(truth["units"][s]), len(ids)) for s in ("day1", "day2"))  # one-to-one per sort
    score = matching_recall(table, truth)
    relabel = dict(zip(ids.tolist(), np.random.default_rng(0).permutation(ids).tolist()))
    shuffled = matching_recall(table.assign(unit_b=table["unit_b"].map(relabel)), truth)
    assert score["recall"] >= 0.7 > shuffled["recall"] and score["same_band"] > shuffled["same_band"]
