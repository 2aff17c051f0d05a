"""Shared/private factor analysis: probe R² against closed forms, part labels, tables and traversals."""

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from mmneuro.analysis import embed
from mmneuro.inputs import model_inputs
from mmneuro.analysis.factors import (
    factor_tables,
    latent_neuron_table,
    part_labels,
    probe_r2,
    probe_table,
    traversal_figures,
)
from mmneuro.models import ModelConfig, MultimodalVAE, default_expert

torch.set_num_threads(1)


def test_probe_r2_matches_the_population_value():
    # y ~ N(0, 1), z = y + σ e: the best linear predictor explains corr² = 1 / (1 + σ²) of var(y)
    rng = np.random.default_rng(0)
    y = rng.standard_normal(4000)
    for sigma in (0.5, 1.0):
        z = (y + sigma * rng.standard_normal(4000))[:, None]
        assert probe_r2(z, y) == pytest.approx(1 / (1 + sigma**2), abs=0.03)
    # two regressors, y = z1 − 2 z2 exactly: R² = 1
    z = rng.standard_normal((500, 2))
    assert probe_r2(z, z[:, 0] - 2 * z[:, 1]) == pytest.approx(1.0, abs=1e-4)


def test_probe_r2_is_near_zero_for_unrelated_latents_and_zero_without_latents():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(600)
    r2 = probe_r2(rng.standard_normal((600, 4)), y)
    assert -0.05 < r2 < 0.01  # out-of-fold: no overfitting gain
    assert probe_r2(np.zeros((600, 0)), y) == 0.0
    with pytest.raises(ValueError, match="N, D"):
        probe_r2(np.zeros((5, 2)), y)


def test_probe_table_finds_the_part_that_carries_each_feature():
    rng = np.random.default_rng(2)
    f = rng.standard_normal((800, 2))
    z = np.column_stack([f[:, 0] + 0.1 * rng.standard_normal(800), rng.standard_normal(800), f[:, 1]])
    parts = {"shared": slice(0, 2), "audio_private": slice(2, 3)}
    table = probe_table(z, {"a": f[:, 0], "b": f[:, 1]}, parts)
    best = table.groupby("feature")["best_part"].first().to_dict()
    assert best == {"a": "shared", "b": "audio_private"}
    r2 = table.set_index(["feature", "part"])["r2"]
    assert r2["a", "shared"] == pytest.approx(1 / 1.01, abs=0.02) and abs(r2["a", "audio_private"]) < 0.03
    assert r2["b", "all"] == pytest.approx(1.0, abs=1e-3)


def test_latent_neuron_table_is_pearson_with_part_labels():
    rng = np.random.default_rng(3)
    z, rates = rng.standard_normal((50, 3)), rng.random((50, 2))
    table = latent_neuron_table(z, rates, np.array([7, 9]), ["shared", "shared", "neural_private"])
    row = table[(table.latent == 2) & (table.unit == 9)].iloc[0]
    assert row["r"] == pytest.approx(np.corrcoef(z[:, 2], rates[:, 1])[0, 1])
    assert row["part"] == "neural_private" and len(table) == 6


def _tiny(n=40, units=6):
    rng = np.random.default_rng(4)
    freq = np.linspace(30e3, 100e3, 8)
    ds = xr.Dataset(
        {"spectrogram": (("syllable", "freq", "time"), rng.random((n, 8, 8)).astype(np.float32)),
         "total_counts": (("syllable", "unit"), rng.poisson(3.0, (n, units)).astype(np.int32))},
        coords={"syllable": [f"s{i}" for i in range(n)], "freq_hz": ("freq", freq), "unit": np.arange(units),
                "mean_freq_hz": ("syllable", rng.uniform(40e3, 90e3, n)),
                "duration_s": ("syllable", rng.uniform(0.02, 0.2, n)),
                "amplitude_db": ("syllable", rng.uniform(10, 40, n)),
                "bin_start_s": ("bin", [-0.05, 0.0]), "bin_end_s": ("bin", [0.0, 0.2])})
    audio = default_expert("audio", [1, 8, 8])
    audio.channels, audio.hidden = [4, 4], [16]
    neural = default_expert("neural", [units])
    neural.hidden = [16]
    torch.manual_seed(0)
    model = MultimodalVAE(ModelConfig(kind="mopoe", latent_dim=2, private_dims={"audio": 1, "neural": 2},
                                      modalities={"audio": audio, "neural": neural},
                                      preprocessing={"neural_input": "total_counts"}))
    model.eval()
    return ds, model


def test_factor_tables_label_every_latent_by_part(tmp_path):
    ds, model = _tiny()
    x = model_inputs(ds, model)
    tables = factor_tables(model, x, ds)
    assert part_labels(model) == ["shared", "shared", "audio_private", "neural_private", "neural_private"]
    assert tables["latent_parts"]["part"].tolist() == part_labels(model)
    assert tables["latent_band"]["part"].tolist() == part_labels(model)
    assert set(tables["latent_neuron"]["part"]) == {"shared", "audio_private", "neural_private"}
    # the probe table's numbers are probe_r2 on the joint posterior mean's slices
    z, _ = embed.posterior_moments(model, x, ("audio", "neural"))
    probes = tables["probes"].set_index(["feature", "part"])["r2"]
    expected = probe_r2(z[:, 3:5], ds["amplitude_db"].values)
    assert probes["amplitude_db", "neural_private"] == pytest.approx(expected)
    summary = tables["part_summary"].set_index("part")
    assert summary.loc["neural_private", "n_latents"] == 2
    assert isinstance(summary, pd.DataFrame)

    paths = traversal_figures(model, z, tmp_path, steps=3)
    names = sorted(p.name for p in paths)
    # each decoder is traversed only along the parts it reads
    assert names == ["traversal_audio_private_audio.png", "traversal_neural_private_neural.png",
                     "traversal_shared_audio.png", "traversal_shared_neural.png"]
    assert all(p.stat().st_size > 0 for p in paths) and not list(tmp_path.glob("*.tmp*"))


def test_unfactorised_model_is_all_shared():
    ds, model = _tiny()
    plain = MultimodalVAE(ModelConfig(kind="mvae", latent_dim=3, modalities=model.config.modalities))
    assert part_labels(plain) == ["shared"] * 3


def test_planted_probes_targets_and_leak_probe_see_where_a_factor_sits():
    from mmneuro.analysis.factors import factorisation_targets, leak_probe, planted_probes
    from mmneuro.synth.scoring import PLANTED_FACTORS

    rng = np.random.default_rng(5)
    n = 600
    amp, freq, dur, drift = rng.standard_normal((4, n))
    noise = lambda: 0.3 * rng.standard_normal(n)  # noqa: E731
    parts = {"shared": slice(0, 2), "audio_private": slice(2, 3), "neural_private": slice(3, 4)}
    planted = {"log_amplitude": amp, "mean_freq_hz": freq, "duration_s": dur, "slow_drift": drift}
    right = np.column_stack([freq + noise(), dur + noise(), amp + noise(), drift + noise()])
    probes = planted_probes(right, planted, parts, PLANTED_FACTORS)
    assert len(probes) == 4 * 3 and set(probes["expected_part"]) == {"audio_private", "shared", "neural_private"}
    r2 = probes.set_index(["factor", "part"])["r2"]
    assert r2["slow_drift", "neural_private"] == pytest.approx(1 / 1.09, abs=0.03)  # var 1 / (1 + 0.3²)
    assert abs(r2["slow_drift", "shared"]) < 0.03
    assert factorisation_targets(probes, parts) == {"audio_only_in_audio_private": True, "tuning_in_shared": True,
                                                    "neural_only_in_neural_private": True}
    # amplitude in the shared part and drift nowhere: both placements fail
    wrong = np.column_stack([freq + noise(), amp + noise(), dur + noise(), rng.standard_normal(n)])
    targets = factorisation_targets(planted_probes(wrong, planted, parts, PLANTED_FACTORS), parts)
    assert targets == {"audio_only_in_audio_private": False, "tuning_in_shared": False,
                       "neural_only_in_neural_private": False}
    # an unfactorised model has nothing to place
    only = {"shared": slice(0, 4)}
    assert set(factorisation_targets(planted_probes(right, planted, only, PLANTED_FACTORS), only).values()) == {None}
    # NaN rows (no planted match) are left out; a constant factor is skipped
    with_nan = {"log_amplitude": np.where(np.arange(n) < 50, np.nan, amp), "harmonic": np.zeros(n)}
    table = planted_probes(right, with_nan, parts, PLANTED_FACTORS)
    assert set(table["factor"]) == {"log_amplitude"} and (table["n_syllables"] == n - 50).all()
    # leak probe: generated rates that follow the source-only factor are caught, independent ones not
    rates = np.exp(0.5 * amp[:, None] * rng.random(6) + rng.standard_normal((n, 6)) * 0.01)
    assert leak_probe(rates, amp, log=True) > 0.95
    assert abs(leak_probe(rng.random((n, 6, 3)), amp)) < 0.05
    assert np.isnan(leak_probe(rates, np.full(n, np.nan)))


def test_traversals_start_from_a_real_syllable_not_the_empty_mean():
    # two clusters of syllables: their mean lies between them, where no syllable is
    rng = np.random.default_rng(6)
    z = np.concatenate([rng.normal(-3, 0.3, (50, 2)), rng.normal(3, 0.3, (51, 2))])
    center = embed.typical_latent(z)
    assert any(np.array_equal(center, row) for row in z)  # a syllable's own latent
    assert abs(center[0]) > 2  # inside a cluster (the 51-syllable one holds the median), not at ≈ 0
    median = np.median(z, 0)
    assert np.linalg.norm((center - median) / z.std(0)) == pytest.approx(
        np.min(np.linalg.norm((z - median) / z.std(0), axis=1)))


def test_probe_r2_equals_sklearn_ridge_per_fold():
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 4))
    y = z @ rng.normal(size=4) + rng.normal(size=300)
    fold, pred = np.random.default_rng(0).permutation(300) % 5, np.empty(300)
    for k in range(5):
        fit = make_pipeline(StandardScaler(), Ridge(alpha=1e-3 * (fold != k).sum())).fit(z[fold != k], y[fold != k])
        pred[fold == k] = fit.predict(z[fold == k])
    assert probe_r2(z, y) == pytest.approx(r2_score(y, pred), abs=1e-12)
