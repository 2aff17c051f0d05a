"""Tests of the demo-data generator: determinism, planted structure, and third-party readers."""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pytest
import soundfile as sf

from mmneuro.errors import InputError
from mmneuro.synth import (SynthConfig, generate_demo, generate_session, load_ground_truth, planted_rate,
                           slow_drift_factor)

SESSION_S = 60.0  # one slow-drift period, enough syllables per frequency band


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = generate_session(tmp_path_factory.mktemp("synth"), "s1", seed=3, duration_s=SESSION_S)
    truth = load_ground_truth(path)
    times = np.load(path / "phy" / "spike_times.npy") / truth["neural"]["sample_rate_hz"]
    clusters = np.load(path / "phy" / "spike_clusters.npy")
    spikes = {u["unit"]: times[clusters == u["unit"]] for u in truth["units"]}
    return path, truth, spikes


def _to_neural(truth, t_audio_s):
    return truth["clock"]["offset_s"] + (1 + truth["clock"]["drift"]) * np.asarray(t_audio_s)


def _response_counts(truth, unit, spike_times):
    """(observed spikes, window length s) per syllable in the unit's planted response window."""
    syl = truth["syllables"]
    start = _to_neural(truth, [s["onset_s"] for s in syl]) + unit["latency_s"]
    end = _to_neural(truth, [s["offset_s"] for s in syl]) + unit["latency_s"] + truth["response_tail_s"]
    counts = np.searchsorted(spike_times, end) - np.searchsorted(spike_times, start)
    return counts, end - start


def _file_digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- determinism -----------------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = generate_session(tmp_path / "a", "s", seed=11, duration_s=6.0)
    b = generate_session(tmp_path / "b", "s", seed=11, duration_s=6.0)
    c = generate_session(tmp_path / "c", "s", seed=12, duration_s=6.0)
    da, db, dc = _file_digests(a), _file_digests(b), _file_digests(c)
    assert "units.nwb" in da and "phy/spike_times.npy" in da and "audio.wav" in da
    assert da == db
    for name in ("audio.wav", "phy/spike_times.npy", "units.nwb", "sync_neural_s.npy", "ground_truth.json"):
        assert da[name] != dc[name], name


def test_demo_shares_units_across_sessions_and_writes_the_sessions_table(tmp_path):
    tsv = generate_demo(tmp_path, n_sessions=2, duration_s=5.0, seed=4)
    lines = tsv.read_text().splitlines()
    assert lines[0].split("\t") == ["session", "audio", "neural", "neural_format", "sync_audio",
                                    "sync_neural", "clock_offset_s", "clock_drift"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == ["demo01", "demo02"]
    for r in rows:
        assert (tmp_path / r[1]).is_file() and (tmp_path / r[2] / "params.py").is_file() and r[3] == "phy"
        assert (tmp_path / r[4]).is_file() and (tmp_path / r[5]).is_file() and r[6] == r[7] == ""
    t1, t2 = load_ground_truth(tmp_path / "demo01"), load_ground_truth(tmp_path / "demo02")
    assert t1["units"] == t2["units"]  # a chronic probe: same ids, same tuning
    assert t1["seed"] != t2["seed"] and t1["clock"] != t2["clock"]


# --- planted neural structure ----------------------------------------------------------------------

def test_band_units_fire_more_in_their_band_and_match_the_oracle(session):
    _, truth, spikes = session
    freqs = np.array([s["mean_freq_hz"] for s in truth["syllables"]])
    band_units = [u for u in truth["units"] if u["feature"] == "mean_freq_hz" and u["label"] == "good"]
    assert len(band_units) == 24
    for u in band_units:
        counts, length = _response_counts(truth, u, spikes[u["unit"]])
        rate = counts / length
        near = np.abs(freqs - u["center"]) < u["width"]
        far = np.abs(freqs - u["center"]) > 3 * u["width"]
        assert near.sum() >= 2, u
        assert rate[near].mean() > rate[far].mean() + 0.4 * u["gain_hz"], u
    # Pooled over units, observed counts follow the oracle: expected = rate * window, less the
    # loss to the 2 ms dead time (rate r is thinned to r / (1 + r * 0.002)).
    observed = expected = 0.0
    for u in band_units:
        counts, length = _response_counts(truth, u, spikes[u["unit"]])
        r = np.array([planted_rate(u, s) for s in truth["syllables"]])
        observed += counts.sum()
        expected += np.sum(r / (1 + r * u["refractory_s"]) * length)
    assert abs(observed - expected) < 4 * np.sqrt(expected), (observed, expected)


def test_responses_start_after_each_units_latency(session):
    _, truth, spikes = session
    onsets = _to_neural(truth, [s["onset_s"] for s in truth["syllables"]])
    tuned = [u for u in truth["units"] if u["feature"] and u["label"] == "good"]
    before = after = expected_before = expected_after = 0.0
    for u in tuned:
        t = spikes[u["unit"]]
        lat = u["latency_s"]
        before += np.sum(np.searchsorted(t, onsets + lat) - np.searchsorted(t, onsets))
        after += np.sum(np.searchsorted(t, onsets + 2 * lat) - np.searchsorted(t, onsets + lat))
        expected_before += u["baseline_hz"] * lat * len(onsets)
        r = np.array([planted_rate(u, s) for s in truth["syllables"]])
        expected_after += np.sum(r / (1 + r * u["refractory_s"])) * lat  # dead-time thinning
    assert abs(before - expected_before) < 4 * np.sqrt(expected_before)
    assert abs(after - expected_after) < 4 * np.sqrt(expected_after)
    assert expected_after > 2 * expected_before  # the check above can tell the two apart


@pytest.mark.parametrize("cluster", ["duration", "fm_slope"])
def test_duration_and_slope_units_follow_their_feature(session, cluster):
    _, truth, spikes = session
    units = [u for u in truth["units"] if u["cluster"] == cluster]
    assert len(units) == 6
    observed = sum(_response_counts(truth, u, spikes[u["unit"]])[0] for u in units)
    expected = sum(np.array([planted_rate(u, s) for s in truth["syllables"]])
                   * _response_counts(truth, u, spikes[u["unit"]])[1] for u in units)
    assert np.corrcoef(observed, expected)[0, 1] > 0.7


def test_untuned_units_follow_the_slow_drift_and_tuned_units_do_not(session):
    _, truth, spikes = session
    factor = truth["neural_only_factor"]
    edges = np.arange(0.0, truth["neural"]["duration_s"] - 5.0, 5.0)
    centers = edges[:-1] + 2.5
    drift_units = [u for u in truth["units"] if u["unit"] in factor["units"]]
    assert sorted(u["unit"] for u in drift_units) == sorted(u["unit"] for u in truth["units"]
                                                            if u["cluster"] == "untuned")
    observed = sum(np.histogram(spikes[u["unit"]], edges)[0] for u in drift_units)
    expected = sum(u["baseline_hz"] * 5.0 * slow_drift_factor(u, factor, centers) for u in drift_units)
    assert np.corrcoef(observed, expected)[0, 1] > 0.8
    # Rate where the drift is high vs low, outside all syllable responses: untuned units change by
    # (1 + g) / (1 - g) > 2, tuned good units not at all.
    syl = truth["syllables"]
    quiet_start = _to_neural(truth, [s["onset_s"] for s in syl])
    quiet_end = _to_neural(truth, [s["offset_s"] for s in syl]) + 0.025 + truth["response_tail_s"]

    def quiet_high(t):
        """(outside every response window, drift factor above 1) for neural times ``t``."""
        k = np.searchsorted(quiet_start, t, side="right") - 1
        quiet = (k < 0) | (t >= quiet_end[np.maximum(k, 0)])
        return quiet, np.sin(2 * np.pi * t / factor["period_s"] + factor["phase_rad"]) > 0

    grid_quiet, grid_high = quiet_high(np.arange(0.0, truth["neural"]["duration_s"], 1e-3))
    time_ratio = (grid_quiet & grid_high).sum() / (grid_quiet & ~grid_high).sum()

    def high_low_ratio(units):
        quiet, high = quiet_high(np.concatenate([spikes[u["unit"]] for u in units]))
        return (quiet & high).sum() / (quiet & ~high).sum() / time_ratio

    assert high_low_ratio(drift_units) > 2.0
    tuned = [u for u in truth["units"] if u["feature"] and u["label"] == "good"]
    assert 0.9 < high_low_ratio(tuned) < 1.1


def test_refractory_period_holds_for_good_units_only(session):
    _, truth, spikes = session
    for u in truth["units"]:
        isi = np.diff(spikes[u["unit"]])
        if u["label"] == "good":
            assert isi.min() >= 0.002 - 1 / truth["neural"]["sample_rate_hz"], u
        elif u["label"] == "noise":
            assert (isi < 0.002).sum() > 0, u  # sorter noise: refractory violations


# --- audio -----------------------------------------------------------------------------------------

def _segment(path, syllable, fs, trim=0.1):
    dur = syllable["offset_s"] - syllable["onset_s"]
    start = int((syllable["onset_s"] + trim * dur) * fs)
    stop = int((syllable["offset_s"] - trim * dur) * fs)
    return sf.read(path, dtype="float64", start=start, stop=stop)[0]


def _dominant_freq(x, fs):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=max(len(x), 2 ** 15)))
    freqs = np.fft.rfftfreq(max(len(x), 2 ** 15), 1 / fs)
    spectrum[freqs < 25_000] = 0  # ignore the low-frequency background
    return freqs[np.argmax(spectrum)]


def test_wav_format_and_flat_and_jump_syllable_frequencies(session):
    path, truth, _ = session
    wav = path / "audio.wav"
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (250_000, 1, "PCM_16", "WAV")
    assert info.frames == round(SESSION_S * 250_000)
    fs = info.samplerate
    flat = [s for s in truth["syllables"] if s["shape"] == "flat"]
    jump = [s for s in truth["syllables"] if s["shape"] == "jump"]
    assert len(flat) >= 5 and len(jump) >= 5
    for s in flat:
        assert abs(_dominant_freq(_segment(wav, s, fs), fs) - s["mean_freq_hz"]) < 2_000, s
    for s in jump:  # each step, away from the jump, sits at its planted frequency
        p = s["jump_fraction"]
        first = {**s, "offset_s": s["onset_s"] + p * s["duration_s"]}
        second = {**s, "onset_s": s["onset_s"] + p * s["duration_s"]}
        assert abs(_dominant_freq(_segment(wav, first, fs, 0.2), fs) - s["start_freq_hz"]) < 2_000, s
        assert abs(_dominant_freq(_segment(wav, second, fs, 0.2), fs) - s["end_freq_hz"]) < 2_000, s


def test_contours_average_to_the_planted_mean_and_stay_in_the_usv_range(session):
    from mmneuro.synth.syllables import frequency_contour

    _, truth, _ = session
    for s in truth["syllables"]:
        contour = frequency_contour(s, 10_000)
        assert abs(contour.mean() - s["mean_freq_hz"]) < 0.01 * s["bandwidth_hz"] + 1e-6, s
        assert 30_000 <= contour.min() and contour.max() <= 120_000, s
        assert np.isclose(s["fm_slope_hz_per_s"], (contour[-1] - contour[0]) / s["duration_s"], rtol=1e-3, atol=1)
        assert 0.02 <= s["duration_s"] <= 0.2 and 35_000 <= s["mean_freq_hz"] <= 105_000


def test_waveforms_are_phase_continuous_even_across_frequency_jumps():
    from mmneuro.synth.syllables import syllable_waveform

    fs = 250_000
    s = {"onset_s": 0.0, "offset_s": 0.05, "shape": "jump", "start_freq_hz": 41_300.0,
         "end_freq_hz": 97_700.0, "jump_fraction": 0.37, "harmonic": False, "amplitude": 1.0, "phase_rad": 0.3}
    first, wave = syllable_waveform(s, fs, SynthConfig(ramp_s=1e-4))
    n = len(wave)
    assert first == 0 and n == 12_500
    # Closed form: phase(t) = phase0 + 2 pi (f1 min(t, T1) + f2 max(t - T1, 0)), the integral of the
    # step frequency (T1 = where the sampled contour switches). A phase reset at the jump (a click)
    # would make the second step's phase disagree.
    t = (np.arange(n) + 1) / fs
    t1 = np.count_nonzero((np.arange(n) + 0.5) / n < 0.37) / fs
    phase = 0.3 + 2 * np.pi * (41_300 * np.minimum(t, t1) + 97_700 * np.maximum(t - t1, 0))
    flat = slice(int(1e-4 * fs), n - int(1e-4 * fs))  # skip the short ramps
    assert np.allclose(wave[flat], np.sin(phase[flat]), atol=1e-6)


def test_usv_band_energy_is_higher_inside_syllables_than_between(session):
    from scipy import signal

    path, truth, _ = session
    x, fs = sf.read(path / "audio.wav", dtype="float64")
    sos = signal.butter(6, [30_000, 110_000], btype="bandpass", fs=fs, output="sos")
    power = signal.sosfiltfilt(sos, x) ** 2
    inside = np.zeros(len(x), bool)
    for s in truth["syllables"]:
        inside[int(s["onset_s"] * fs):int(s["offset_s"] * fs)] = True
    assert power[inside].mean() > 5 * power[~inside].mean()
    assert power[~inside].mean() > 0  # noise is present, not digital silence
    # Each syllable rises above the noise floor by an amount ordered by its planted amplitude.
    amp = np.array([s["amplitude"] for s in truth["syllables"]])
    seg_power = np.array([power[int(s["onset_s"] * fs):int(s["offset_s"] * fs)].mean()
                          for s in truth["syllables"]])
    assert np.corrcoef(np.log(amp), np.log(seg_power))[0, 1] > 0.9


# --- third-party readers ---------------------------------------------------------------------------

def test_phylib_template_model_reads_our_phy_folder(session):
    from phylib.io.model import load_model

    path, truth, spikes = session
    model = load_model(path / "phy" / "params.py")
    assert model.sample_rate == 30_000.0
    assert np.array_equal(model.spike_samples, np.load(path / "phy" / "spike_times.npy"))
    assert np.all(np.diff(model.spike_samples.astype(np.int64)) >= 0)
    assert set(model.cluster_ids.tolist()) == {u["unit"] for u in truth["units"]}
    for u in truth["units"]:
        assert np.allclose(model.spike_times[model.spike_clusters == u["unit"]], spikes[u["unit"]], rtol=0,
                           atol=1e-12)
    assert model.metadata["group"] == {u["unit"]: u["label"] for u in truth["units"]}


def test_pynwb_reads_the_same_units(session):
    from pynwb import NWBHDF5IO

    path, truth, spikes = session
    with NWBHDF5IO(str(path / "units.nwb"), "r") as io:
        table = io.read().units.to_dataframe()
    assert sorted(table["cluster_id"]) == sorted(u["unit"] for u in truth["units"])
    for u in truth["units"]:
        row = table[table["cluster_id"] == u["unit"]].iloc[0]
        assert row["quality"] == u["label"]
        assert np.array_equal(np.asarray(row["spike_times"]), spikes[u["unit"]])


# --- clocks ----------------------------------------------------------------------------------------

def test_sync_pulses_give_back_the_planted_offset_and_drift(session):
    path, truth, _ = session
    assert 0.01 <= truth["clock"]["offset_s"] <= 0.5 and 0 < abs(truth["clock"]["drift"]) <= 20e-6
    audio, neural = np.load(path / "sync_audio_s.npy"), np.load(path / "sync_neural_s.npy")
    assert abs(len(audio) - len(neural)) == len(truth["sync"]["dropped_indices"]) >= 1
    # Match by the offset that pairs the most pulses (irregular intervals make it unique), then fit
    # t_neural = offset + (1 + drift) * t_audio by least squares on the matched pairs.
    candidates = (neural[:, None] - audio[None, :3]).ravel()
    n_match = [np.sum(np.min(np.abs(neural[:, None] - (audio[None, :] + c)), axis=0) < 10e-3)
               for c in candidates]
    rough = candidates[int(np.argmax(n_match))]
    j = np.argmin(np.abs(neural[:, None] - (audio[None, :] + rough)), axis=0)
    ok = np.abs(neural[j] - audio - rough) < 10e-3  # drift moves pulses ~1 ms/min
    assert ok.sum() == min(len(audio), len(neural))
    slope, intercept = np.polyfit(audio[ok], neural[j][ok], 1)
    assert abs(intercept - truth["clock"]["offset_s"]) < 40e-6
    assert abs((slope - 1) - truth["clock"]["drift"]) < 1e-6


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, where", [
    (dict(session="bad name", seed=0, duration_s=10.0), "session"),
    (dict(session="ok", seed=0, duration_s=1.0), "duration_s"),
    (dict(session="ok", seed=-1, duration_s=10.0), "seed"),
])
def test_bad_arguments_raise_input_error_and_write_nothing(tmp_path, kwargs, where):
    with pytest.raises(InputError) as err:
        generate_session(tmp_path / "out", **kwargs)
    assert err.value.where == where
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_crash_mid_session_leaves_no_partial_session(tmp_path, monkeypatch):
    import mmneuro.synth.session as session_module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(session_module, "write_nwb", boom)
    with pytest.raises(RuntimeError):
        generate_session(tmp_path, "s", seed=0, duration_s=5.0)
    assert list(tmp_path.iterdir()) == []


def test_load_ground_truth_names_the_missing_file(tmp_path):
    with pytest.raises(InputError, match="ground_truth.json"):
        load_ground_truth(tmp_path)


def test_cli_prints_one_line_per_session_and_the_table(tmp_path, capsys):
    from mmneuro.cli import synth as synth_command

    parser = argparse.ArgumentParser()
    synth_command.configure_parser(parser)
    args = parser.parse_args([str(tmp_path), "--sessions", "2", "--duration-s", "5", "--seed", "1"])
    assert synth_command.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("demo01: ") and "units" in out[0] and out[1].startswith("demo02: ")
    assert out[2] == f"sessions table: {tmp_path / 'sessions.tsv'}"


def test_family_configs_are_seeded_and_within_the_planted_ranges():
    from mmneuro.synth import draw_config
    from mmneuro.synth.units import make_clusters, make_units

    assert draw_config(3) == draw_config(3) and draw_config(3) != draw_config(4)
    seen_extra = set()
    for seed in range(30):
        c = draw_config(seed)
        centers = np.array(c.band_centers_hz)
        assert 2 <= len(centers) <= 6 and 35e3 <= centers.min() and centers.max() <= 105e3
        assert 2e3 <= c.band_width_hz <= 10e3 and np.diff(centers).min() >= 2.5 * c.band_width_hz - 1e-6
        assert 0.5 <= c.baseline_hz[0] < c.baseline_hz[1] <= 10.0 and len(c.extra_clusters) <= 2
        seen_extra |= set(c.extra_clusters)
        units = make_units(c)
        n_tuned = sum(u["feature"] is not None for u in units)
        assert n_tuned == c.units_per_cluster * (len(centers) + len(c.extra_clusters))
        assert c.n_untuned <= 0.4 * (n_tuned + c.n_untuned) + 1
        names = {cl["name"] for cl in make_clusters(c)}
        assert set(c.extra_clusters) <= names and len(names) == len(centers) + len(c.extra_clusters) + 3
    assert seen_extra == {"duration", "fm_slope", "amplitude"}


def test_demo_config_keeps_its_clusters_and_amplitude_units_follow_amplitude():
    from mmneuro.synth.units import make_clusters, planted_rate

    names = [cl["name"] for cl in make_clusters(SynthConfig())]
    assert names == ["band_45k", "band_60k", "band_75k", "band_90k", "duration", "fm_slope", "untuned", "mua",
                     "noise"]
    amp = next(cl for cl in make_clusters(SynthConfig(extra_clusters=("amplitude",))) if cl["name"] == "amplitude")
    unit = {"baseline_hz": 2.0, "gain_hz": 50.0, **{k: amp[k] for k in ("feature", "center", "width")}}
    assert planted_rate(unit, {"amplitude": amp["center"]}) == pytest.approx(52.0)
    assert planted_rate(unit, {"amplitude": 0.03}) < 3.0


def test_synth_config_from_dict_rejects_unknown_keys():
    assert SynthConfig.from_dict(SynthConfig().to_dict()) == SynthConfig()
    with pytest.raises(InputError, match="bogus"):
        SynthConfig.from_dict({"bogus": 1})
    with pytest.raises(InputError, match="extra_clusters"):
        SynthConfig.from_dict({"extra_clusters": ["pitch"]})


def test_cli_takes_a_family_seed_or_a_config_file(tmp_path):
    from mmneuro.cli import synth as synth_command
    from mmneuro.synth import draw_config

    parser = argparse.ArgumentParser()
    synth_command.configure_parser(parser)
    base = ["--sessions", "1", "--duration-s", "5"]
    assert synth_command.main(parser.parse_args([str(tmp_path / "f"), *base, "--family", "2"])) == 0
    truth = load_ground_truth(tmp_path / "f" / "demo01")
    assert SynthConfig.from_dict(truth["config"]) == draw_config(2)
    (tmp_path / "c.yaml").write_text("n_untuned: 3\nextra_clusters: [amplitude]\n")
    assert synth_command.main(parser.parse_args([str(tmp_path / "c"), *base, "--config", str(tmp_path / "c.yaml")])) == 0
    names = [u["cluster"] for u in load_ground_truth(tmp_path / "c" / "demo01")["units"]]
    assert names.count("untuned") == 3 and "amplitude" in names and "duration" not in names
    (tmp_path / "bad.yaml").write_text("n_untuned: [oops\n")
    with pytest.raises(InputError, match="bad.yaml"):
        synth_command.main(parser.parse_args([str(tmp_path / "b"), *base, "--config", str(tmp_path / "bad.yaml")]))
    assert not (tmp_path / "b").exists()
