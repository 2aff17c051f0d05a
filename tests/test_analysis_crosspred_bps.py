"""Bits per spike (Neural Latents Benchmark) of the audio -> neural cross-prediction."""

import numpy as np
import pytest
from scipy.stats import poisson

from mmneuro.analysis.crosspred import (MIN_RATE, bits_per_spike, nll_gain, overall_bits_per_spike, overall_table,
                                        score_table)

LN2 = np.log(2)
# 3 windows x 2 units; unit 0 has 3 spikes (mean 1), unit 1 has 6 (mean 2)
Y = np.array([[0, 2], [1, 4], [2, 0]])
MU = np.array([[0.5, 3.0], [1.0, 3.0], [2.0, 1.0]])


def test_hand_computed_two_units():
    # unit 0: NLL_null = 3 x 1 = 3, NLL_model = 0.5 + 1 + (2 - 2 ln 2)
    # unit 1: NLL_null = 6 - 6 ln 2, NLL_model = (3 - 2 ln 3) + (3 - 4 ln 3) + 1
    gain = np.array([2 * LN2 - 0.5, 6 * np.log(1.5) - 1])
    np.testing.assert_allclose(nll_gain(Y, MU), gain, rtol=1e-12)
    np.testing.assert_allclose(bits_per_spike(Y, MU), gain / np.array([3, 6]) / LN2, rtol=1e-12)
    # the log y! terms cancel: the same as full Poisson log-likelihoods
    full = poisson.logpmf(Y, MU).sum(0) - poisson.logpmf(Y, Y.mean(0)).sum(0)
    np.testing.assert_allclose(nll_gain(Y, MU), full, rtol=1e-12)
    overall = overall_bits_per_spike(Y, MU)
    assert overall == pytest.approx(gain.sum() / 9 / LN2, rel=1e-12)
    # spikes weigh: not the mean of the per-unit values (0.372 vs 0.385 here)
    assert abs(overall - bits_per_spike(Y, MU).mean()) > 0.01


def test_perfect_model_positive_null_zero_worse_negative():
    rng = np.random.default_rng(0)
    rates = rng.uniform(0.2, 6.0, (3000, 3))
    y = rng.poisson(rates)
    assert (bits_per_spike(y, rates) > 0.1).all() and overall_bits_per_spike(y, rates) > 0.1
    null = np.broadcast_to(y.mean(0), y.shape)
    assert (bits_per_spike(y, null) == 0).all() and overall_bits_per_spike(y, null) == 0
    worse = rates[rng.permutation(len(rates))]  # right marginal, wrong windows
    assert (bits_per_spike(y, worse) < 0).all() and overall_bits_per_spike(y, worse) < 0


def test_silent_unit_and_floor():
    y = np.column_stack([Y, np.zeros(3)])
    mu = np.column_stack([MU, np.full(3, 0.5)])
    bps = bits_per_spike(y, mu)
    assert np.isnan(bps[2]) and np.isfinite(bps[:2]).all()
    # the silent unit still adds its NLL difference (3 x MIN_RATE - 3 x 0.5) to the overall sum
    gain = nll_gain(Y, MU).sum() + 3 * MIN_RATE - 1.5
    assert overall_bits_per_spike(y, mu) == pytest.approx(gain / 9 / LN2, rel=1e-12)
    assert np.isnan(overall_bits_per_spike(np.zeros((3, 2)), MU))
    # a zero prediction where spikes fell is floored at MIN_RATE, as the deviance is: finite, very negative
    assert -1e3 < bits_per_spike(Y, np.where(Y > 0, 0.0, MU))[0] < -5


def test_score_table_column_and_overall_skip_unpredicted_rows():
    pred = MU.copy()
    pred[0] = np.nan  # e.g. an oracle's unmatched syllable
    table = score_table(Y, {"model": MU, "partial": pred}, np.array([7, 8]))
    assert list(table.columns)[-1] == "bits_per_spike"
    s = table.set_index(["method", "unit"])["bits_per_spike"]
    np.testing.assert_allclose(s.loc["model"].to_numpy(), bits_per_spike(Y, MU))
    np.testing.assert_allclose(s.loc["partial"].to_numpy(), bits_per_spike(Y[1:], MU[1:]))
    overall = overall_table(Y, {"model": MU, "partial": pred})
    assert overall == pytest.approx({"model": overall_bits_per_spike(Y, MU),
                                     "partial": overall_bits_per_spike(Y[1:], MU[1:])})


def test_report_shows_all_units_bits_per_spike_next_to_r(tmp_path):
    import json
    import re

    from mmneuro.report.html import _comparison_tables

    folder = tmp_path / "analysis" / "m"
    folder.mkdir(parents=True)
    table = score_table(Y, {"model": MU}, np.array([7, 8]))
    table.to_csv(folder / "crosspred.csv", index=False)
    (folder / "synergy.csv").write_text("\n")  # an empty synergy table
    (folder / "summary.json").write_text(json.dumps({"crosspred": {"bits_per_spike_all_units": overall_table(
        Y, {"model": MU})}}))
    html = str(_comparison_tables([folder])["crosspred"])
    r, bps = table["pearson_r"].mean(), overall_bits_per_spike(Y, MU)
    assert re.search(rf"<td>model</td>\s*<td>{r:.3g}</td>\s*<td>{bps:.3g}</td>", html), html
    assert f"{bps:.3g}" != f"{table['bits_per_spike'].mean():.3g}"  # the overall, not the per-unit mean
    (folder / "summary.json").write_text("{}")  # an analysis from before bits per spike: shown as –
    assert re.search(rf"<td>{r:.3g}</td>\s*<td>–</td>", str(_comparison_tables([folder])["crosspred"]))


# PSTH R² (Neural Latents Benchmark's eval_psth) of binned predictions: 5 syllables x 2 units x 2 bins,
# groups 0, 0, 1, 1 and one syllable left out (-1). Unit 0's actual group PSTHs are [2, 1] and [1, 2]
# (mean 1.5, SS_tot = 4 x 0.25 = 1); its predicted ones [2, 1] and [1, 1.5] (SS_res = 0.5² = 0.25),
# so R² = 0.75. Unit 1 fires once in every bin: constant PSTHs, R² undefined (NaN).
GROUPS = np.array([0, 0, 1, 1, -1])
COUNTS = np.array([[[1, 0], [1, 1]], [[3, 2], [1, 1]], [[0, 0], [1, 1]], [[2, 4], [1, 1]], [[50, 50], [9, 9]]], float)
PRED = np.array([[[2, 1], [0, 3]], [[2, 1], [0, 3]], [[1, 1], [5, 5]], [[1, 2], [5, 5]], [[0, 0], [0, 0]]], float)


def test_psth_r2_hand_computed():
    from mmneuro.analysis.crosspred import psth_r2

    r2 = psth_r2(COUNTS, PRED, GROUPS)
    assert r2[0] == pytest.approx(0.75, rel=1e-12) and np.isnan(r2[1])
    # the group PSTHs themselves score 1; one PSTH for every group (the grand mean) scores 0
    means = {g: COUNTS[GROUPS == g].mean(0) for g in (0, 1)}
    perfect = np.stack([means.get(g, np.zeros((2, 2))) for g in GROUPS])
    assert psth_r2(COUNTS, perfect, GROUPS)[0] == pytest.approx(1.0)
    assert psth_r2(COUNTS, np.full_like(COUNTS, 1.5), GROUPS)[0] == pytest.approx(0.0, abs=1e-12)


def test_psth_r2_matches_sklearn_r2_score_on_the_stacked_psths():
    """As NLB computes it: r2_score over (group, bin) points per unit, here on random data."""
    from sklearn.metrics import r2_score

    from mmneuro.analysis.crosspred import psth_r2

    rng = np.random.default_rng(0)
    counts, pred = rng.poisson(3.0, (60, 4, 5)).astype(float), rng.uniform(1, 5, (60, 4, 5))
    groups = np.arange(60) % 3
    stack = lambda x: np.concatenate([x[groups == g].mean(0).T for g in range(3)])  # (G·B, U)  # noqa: E731
    np.testing.assert_allclose(psth_r2(counts, pred, groups), r2_score(stack(counts), stack(pred),
                                                                       multioutput="raw_values"), rtol=1e-12)


def test_neural_to_neural_rows_and_psth_column_in_the_report(tmp_path):
    """The reconstruction's rows (direction neural->neural) show their all-units bits per spike, and
    the per-unit PSTH R² is averaged over units in the report (NLB's average over neurons)."""
    import json
    import re

    import pandas as pd

    from mmneuro.report.html import _comparison_tables

    folder = tmp_path / "analysis" / "m"
    folder.mkdir(parents=True)
    table = pd.concat([score_table(Y, {"model": MU}, np.array([7, 8])),
                       score_table(Y, {"recon": MU[::-1]}, np.array([7, 8]), "neural->neural")], ignore_index=True)
    assert table["direction"].tolist() == ["audio->neural"] * 2 + ["neural->neural"] * 2
    table["psth_r2"] = [0.5, 0.25, np.nan, np.nan]
    table.to_csv(folder / "crosspred.csv", index=False)
    (folder / "synergy.csv").write_text("\n")
    overall = overall_table(Y, {"model": MU, "recon": MU[::-1]})
    (folder / "summary.json").write_text(json.dumps({"crosspred": {"bits_per_spike_all_units": overall}}))
    html = str(_comparison_tables([folder])["crosspred"])
    assert re.search(r"<td>neural-&gt;neural</td>\s*<td>recon</td>\s*<td>[^<]+</td>\s*<td>"
                     rf"{overall['recon']:.3g}</td>", html), html
    assert re.search(r"<td>model</td>(\s*<td>[^<]+</td>){4}\s*<td>0.375</td>", html), html
