"""Band energies, weighted frequency, traversals and band tables on images with planted frequencies."""

import numpy as np
import pytest

from mmneuro.analysis.bands import (
    band_edges_hz, band_energy, cluster_band_table, cluster_frequency_profiles, latent_band_table, peak_center,
    traversal_frequencies, weighted_frequency_hz)

FREQ_HZ = np.linspace(25_000, 115_000, 91)  # 1 kHz rows


def line_images(freqs_hz, n_time=8, floor=0.1):
    """Images with background ``floor`` and a 1-row tone at each frequency (nearest row)."""
    freqs_hz = np.atleast_1d(freqs_hz)
    images = np.full((len(freqs_hz), len(FREQ_HZ), n_time), floor)
    rows = np.abs(FREQ_HZ[None, :] - freqs_hz[:, None]).argmin(axis=1)
    images[np.arange(len(freqs_hz)), rows, :] = 0.9
    return images


def test_band_edges_and_energy():
    edges = band_edges_hz(30_000, 110_000, 5_000)
    assert len(edges) == 17 and edges[0] == 30_000 and edges[-1] == 110_000
    energy = band_energy(line_images([47_000]), FREQ_HZ, edges)
    # band 45-50 kHz holds 5 rows, one of them the tone: (0.9 + 4 * 0.1) / 5
    assert energy[0, 3] == pytest.approx((0.9 + 4 * 0.1) / 5)
    assert np.delete(energy[0], 3) == pytest.approx(0.1)


def test_weighted_frequency_finds_the_tone():
    f = weighted_frequency_hz(line_images([41_000, 77_000]), FREQ_HZ, 30_000, 110_000)
    np.testing.assert_allclose(f, [41_000, 77_000])
    assert np.isnan(weighted_frequency_hz(np.zeros((1, 91, 8)), FREQ_HZ, 30_000, 110_000)[0])


def test_peak_center_is_exact_for_a_parabola():
    centers = np.arange(32.5, 110, 5.0)
    values = 1.0 - (centers - 61.3) ** 2 / 100
    assert peak_center(values, centers) == pytest.approx(61.3)
    assert peak_center(np.r_[5.0, np.zeros(len(centers) - 1)], centers) == 32.5  # edge: no refinement


def test_traversal_slope_of_a_linear_decoder():
    # decoder: a tone at 60 kHz + 4 kHz per unit of z0; z1 does nothing
    def decode(z):
        return line_images(60_000 + 4_000 * z[:, 0])

    offsets, freqs = traversal_frequencies(decode, np.zeros(2), np.array([2.0, 1.0]), sd_range=2.0, steps=5,
                                           freq_hz=FREQ_HZ, lo_hz=30_000, hi_hz=110_000)
    np.testing.assert_allclose(offsets, [-2, -1, 0, 1, 2])
    np.testing.assert_allclose(freqs[0], 60_000 + 8_000 * offsets)  # 4 kHz/unit * 2 units per SD
    np.testing.assert_allclose(freqs[1], 60_000)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 2))
    mean_freq = 60_000 + 8_000 * z[:, 0]
    table = latent_band_table(z, band_energy(line_images(mean_freq), FREQ_HZ, band_edges_hz(30e3, 110e3, 5e3)),
                              np.arange(32.5e3, 110e3, 5e3), {"mean_freq_hz": mean_freq}, (offsets, freqs))
    assert table.loc[0, "traversal_slope_khz_per_sd"] == pytest.approx(8.0)
    assert table.loc[1, "traversal_slope_khz_per_sd"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc[0, "r_mean_freq_hz"] == pytest.approx(1.0)
    assert table.loc[0, "band_r"] > 0  # z0 high -> high bands


def test_cluster_band_recovers_planted_tuning():
    """Units tuned (Gaussian, 5 kHz wide) to 45/60/75/90 kHz: each cluster's band centre lands on its
    planted centre, though the centres sit on band edges; a duration-tuned cluster is labelled with
    duration and gets no band; the untuned units (-1) one row, untuned."""
    rng = np.random.default_rng(4)
    n = 800
    mean_freq = rng.uniform(35_000, 105_000, n)
    duration = rng.uniform(0.02, 0.2, n)
    centers = [45_000, 60_000, 75_000, 90_000]
    labels = np.repeat([1, 2, 3, 4, 5, -1], 4)
    tuning = [np.exp(-0.5 * ((mean_freq - c) / 5_000) ** 2) for c in centers]
    tuning += [np.exp(-0.5 * ((duration - 0.15) / 0.03) ** 2), np.zeros(n)]
    rate = np.column_stack([4 + 60 * tuning[lab - 1] for lab in labels])
    rates = rng.poisson(rate * (duration[:, None] + 0.02)) / (duration[:, None] + 0.02)
    edges = band_edges_hz(30_000, 110_000, 5_000)
    energies = band_energy(line_images(mean_freq), FREQ_HZ, edges)
    z = np.column_stack([mean_freq, duration])
    lat = latent_band_table(z, energies, (edges[:-1] + edges[1:]) / 2, {})
    table = cluster_band_table(rates, labels, energies, (edges[:-1] + edges[1:]) / 2,
                               {"mean_freq_hz": mean_freq, "duration_s": duration},
                               {c: [(0, 0.1)] for c in range(1, 6)}, lat)
    by = table.set_index("cluster")
    for c, center in zip(range(1, 5), centers):
        assert by.loc[c, "band_center_khz"] == pytest.approx(center / 1e3, abs=2.5)
        assert by.loc[c, "label"] == "frequency band"
    assert by.loc[1:5, "tuned"].all()
    assert by.loc[5, "label"] == "duration_s" and np.isnan(by.loc[5, "band_center_khz"])
    assert by.loc[-1, "label"] == "untuned" and not by.loc[-1, "tuned"] and by.loc[-1, "n_units"] == 4
    assert np.isnan(by.loc[-1, "band_center_khz"])
    assert list(table["cluster"]) == [1, 2, 3, 4, 5, -1]
    assert table.loc[0, "defining_latents"] == "z0 (+0.10)"


def test_cluster_frequency_profiles_peak_in_the_planted_band():
    """Clusters x bands (the report's first figure): a cluster whose units fire for 60-65 kHz syllables
    peaks in that band; untuned units (label -1) come last and stay flat."""
    rng = np.random.default_rng(0)
    freq = rng.uniform(30e3, 110e3, 2000)
    labels = np.array([1, 1, -1, 2])
    rates = rng.poisson(2.0, (2000, 4)).astype(float)
    rates[:, :2] += 10.0 * ((freq >= 60e3) & (freq < 65e3))[:, None]
    rates[:, 3] += 10.0 * (freq >= 100e3)
    edges = band_edges_hz(30e3, 110e3, 5e3)
    ids, profiles = cluster_frequency_profiles(rates, labels, freq, edges)
    assert ids == [1, 2, -1] and profiles.shape == (3, len(edges) - 1)
    assert edges[np.argmax(profiles[0])] == 60e3 and edges[np.argmax(profiles[1])] >= 100e3
    assert np.abs(profiles[2]).max() < 0.3 < profiles[0].max()
