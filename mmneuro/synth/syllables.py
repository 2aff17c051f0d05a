"""Planted USV syllables: timing in bouts, frequency contours, and phase-continuous waveforms."""

from __future__ import annotations

import numpy as np

from mmneuro.synth.config import SynthConfig


def sample_syllables(rng: np.random.Generator, duration_s: float, config: SynthConfig) -> list[dict]:
    """Draw the syllables of a session of ``duration_s`` seconds (audio clock).

    Returns ground-truth dicts in onset order (keys as in docs/data_contract.md plus
    ``duration_s``, ``bandwidth_hz`` and ``jump_fraction``), all within [0.1 s, duration_s - 0.1 s].
    Mean frequency, duration and shape are drawn independently so tuned units stay identifiable.
    """
    c = config
    syllables: list[dict] = []
    t = rng.uniform(0.2, 1.0)
    bout = 0
    end = duration_s - 0.1
    while True:
        n_in_bout = rng.integers(c.syllables_per_bout[0], c.syllables_per_bout[1] + 1)
        for _ in range(n_in_bout):
            dur = rng.uniform(*c.duration_s)
            if t + dur > end:
                return syllables
            syllable = _draw_contour(rng, dur, c)
            syllable.update(index=len(syllables), onset_s=t, offset_s=t + dur, duration_s=dur, bout=bout)
            syllables.append(syllable)
            t += dur + rng.uniform(*c.syllable_gap_s)
        bout += 1
        t += rng.uniform(*c.bout_gap_s)


def _draw_contour(rng: np.random.Generator, dur: float, c: SynthConfig) -> dict:
    names = [name for name, _ in c.shape_probabilities]
    probs = np.array([p for _, p in c.shape_probabilities])
    shape = str(rng.choice(names, p=probs / probs.sum()))
    mean = rng.uniform(*c.mean_freq_hz)
    bw = rng.uniform(*c.sweep_bandwidth_hz)
    jump_fraction = rng.uniform(0.3, 0.7) if shape == "jump" else 0.5
    direction = -1.0 if shape == "down" or (shape == "jump" and rng.random() < 0.5) else 1.0
    # The contour spans mean - below * bw .. mean + above * bw; shrink bw to keep it in contour_range_hz.
    below, above = (1 - jump_fraction, jump_fraction) if direction > 0 else (jump_fraction, 1 - jump_fraction)
    floor, ceiling = c.contour_range_hz
    bw = 0.0 if shape == "flat" else min(bw, (mean - floor) / below, (ceiling - mean) / above)
    # start/end placed so the time-average frequency is exactly `mean`: for a sweep the midpoint,
    # for a jump (two steps, the first lasting jump_fraction) p * start + (1 - p) * end = mean.
    start = mean - direction * (1 - jump_fraction) * bw
    end = start + direction * bw
    if shape != "jump":
        jump_fraction = 0.0
    harmonic = bool(rng.random() < c.harmonic_probability) and 2 * max(start, end) < 0.96 * c.audio_rate_hz / 2
    amplitude = float(np.exp(rng.uniform(np.log(c.amplitude[0]), np.log(c.amplitude[1]))))
    return {
        "shape": shape,
        "mean_freq_hz": float(mean),
        # The envelope is flat around the temporal midpoint, so that is where power peaks.
        "peak_freq_hz": float(start if (shape == "jump" and jump_fraction > 0.5) else
                              end if shape == "jump" else (start + end) / 2),
        "start_freq_hz": float(start),
        "end_freq_hz": float(end),
        "bandwidth_hz": float(abs(end - start)),
        "fm_slope_hz_per_s": float((end - start) / dur),
        "jump_fraction": float(jump_fraction),
        "harmonic": harmonic,
        "amplitude": amplitude,
        "phase_rad": float(rng.uniform(0, 2 * np.pi)),
    }


def frequency_contour(syllable: dict, n_samples: int) -> np.ndarray:
    """Instantaneous frequency (Hz) at each of ``n_samples`` evenly spaced samples of the syllable."""
    u = (np.arange(n_samples) + 0.5) / n_samples  # fraction of the syllable elapsed
    start, end = syllable["start_freq_hz"], syllable["end_freq_hz"]
    if syllable["shape"] == "jump":
        return np.where(u < syllable["jump_fraction"], start, end)
    return start + (end - start) * u


def syllable_waveform(syllable: dict, sample_rate_hz: float, config: SynthConfig) -> tuple[int, np.ndarray]:
    """Samples of one syllable: (index of its first sample in the WAV, float64 waveform in [-1, 1])."""
    first = int(np.ceil(syllable["onset_s"] * sample_rate_hz))
    n = max(int(np.ceil(syllable["offset_s"] * sample_rate_hz)) - first, 1)
    freq = frequency_contour(syllable, n)
    # Phase-continuous synthesis: phase is the running integral of the instantaneous frequency,
    # so frequency steps (the "jump" shape) produce no discontinuity in the waveform (no clicks).
    phase = syllable["phase_rad"] + 2 * np.pi * np.cumsum(freq) / sample_rate_hz
    wave = np.sin(phase)
    if syllable["harmonic"]:
        wave += config.harmonic_ratio * np.sin(2 * phase)
    return first, syllable["amplitude"] * _envelope(n, sample_rate_hz, config.ramp_s) * wave


def _envelope(n: int, sample_rate_hz: float, ramp_s: float) -> np.ndarray:
    """Flat envelope with raised-cosine attack and decay (each at most a quarter of the syllable)."""
    n_ramp = max(1, min(int(ramp_s * sample_rate_hz), n // 4))
    env = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n_ramp) + 0.5) / n_ramp)
    env[:n_ramp] = ramp
    env[n - n_ramp:] = np.minimum(env[n - n_ramp:], ramp[::-1])
    return env
