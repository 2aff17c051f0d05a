"""Clock fit from two TTL trains with missing pulses and irregular intervals."""

from __future__ import annotations

import numpy as np
import pytest

from mmneuro.errors import InputError
from mmneuro.neural.sync import ClockFit, fit_clock


def pulse_trains(offset_s, drift, *, seed=0, n=300, jitter_s=0.0, missing=0.1):
    """Audio-clock pulses at irregular 0.5-1.5 s intervals, the neural copies mapped by the clock;
    each train independently loses a fraction ``missing`` of its pulses."""
    rng = np.random.default_rng(seed)
    audio = 2.0 + np.cumsum(rng.uniform(0.5, 1.5, n))
    neural = offset_s + (1 + drift) * audio + rng.normal(0, jitter_s, n) if jitter_s else offset_s + (1 + drift) * audio
    keep_a, keep_n = rng.random(n) > missing, rng.random(n) > missing
    return audio[keep_a], neural[keep_n], int((keep_a & keep_n).sum())


@pytest.mark.parametrize("offset_s, drift", [(0.0371, 2e-5), (-5.3, -8e-5), (123.456, 0.0)])
def test_exact_pulses_recover_offset_and_drift(offset_s, drift):
    audio, neural, shared = pulse_trains(offset_s, drift)
    fit = fit_clock(audio, neural)
    assert fit.n_matched == shared
    assert abs(fit.offset_s - offset_s) < 1e-9
    assert abs(fit.drift - drift) < 1e-11
    assert fit.residual_s < 1e-9


def test_jittered_pulses_residual_matches_the_jitter():
    jitter = 50e-6
    audio, neural, shared = pulse_trains(0.0371, 2e-5, seed=3, jitter_s=jitter, missing=0.2)
    fit = fit_clock(audio, neural)
    assert fit.n_matched == shared
    assert abs(fit.offset_s - 0.0371) < 1e-3 / 10  # well within the 1 ms requirement
    # RMS residual of a 2-parameter least-squares fit: jitter * sqrt((n - 2) / n).
    assert fit.residual_s == pytest.approx(jitter, rel=0.15)


def test_fit_is_order_free_and_maps_times():
    audio, neural, _ = pulse_trains(0.5, 1e-4, seed=1)
    rng = np.random.default_rng(0)
    fit = fit_clock(rng.permutation(audio), rng.permutation(neural))
    np.testing.assert_allclose(fit.to_neural([0.0, 100.0]), [0.5, 0.5 + (1 + 1e-4) * 100.0], atol=1e-9)
    assert ClockFit(1.0, 0.5).to_neural(2.0) == 4.0


def test_regular_trains_are_refused_as_ambiguous():
    audio = np.arange(100) * 1.0
    with pytest.raises(InputError, match="too regular"):
        fit_clock(audio, audio[5:] + 0.25)


def test_too_few_or_bad_pulses():
    with pytest.raises(InputError, match="at least 3"):
        fit_clock([1.0, 2.0], [1.0, 2.0, 3.0], names=("a.npy", "n.npy"))
    with pytest.raises(InputError, match="NaN"):
        fit_clock([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0])
