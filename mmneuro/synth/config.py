"""All knobs of the demo-data generator, with defaults that look like a real USV + probe recording."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic session. Frequencies in Hz, times in seconds, rates in Hz.

    Unit parameters (tuning, baseline, gain, latency, ids) come from ``probe_seed`` alone, so every
    session generated with the same config has the same units (a chronic probe with tracked units).
    """

    # --- sampling
    audio_rate_hz: int = 250_000
    neural_rate_hz: int = 30_000
    chunk_s: float = 2.0  # WAV is synthesised and written this many seconds at a time (memory bound)

    # --- syllables and bouts
    syllables_per_bout: tuple[int, int] = (3, 15)
    syllable_gap_s: tuple[float, float] = (0.05, 0.30)
    bout_gap_s: tuple[float, float] = (1.0, 4.0)
    duration_s: tuple[float, float] = (0.02, 0.20)
    mean_freq_hz: tuple[float, float] = (35_000.0, 105_000.0)
    sweep_bandwidth_hz: tuple[float, float] = (5_000.0, 25_000.0)  # |end - start| of up/down/jump
    contour_range_hz: tuple[float, float] = (30_000.0, 120_000.0)  # every contour stays inside (bw shrunk)
    shape_probabilities: tuple[tuple[str, float], ...] = (
        ("up", 0.3), ("down", 0.3), ("flat", 0.2), ("jump", 0.2))
    harmonic_probability: float = 0.3
    harmonic_ratio: float = 0.3  # 2nd-harmonic amplitude relative to the fundamental
    amplitude: tuple[float, float] = (0.03, 0.3)  # peak, fraction of full scale, log-uniform
    ramp_s: float = 0.005  # raised-cosine attack/decay (capped at a quarter of the syllable)

    # --- background noise (fractions of full scale, RMS)
    white_noise_rms: float = 0.01
    low_noise_rms: float = 0.05
    low_noise_cutoff_hz: float = 8_000.0

    # --- units (a chronic probe)
    probe_seed: int = 1234
    band_centers_hz: tuple[float, ...] = (45_000.0, 60_000.0, 75_000.0, 90_000.0)
    band_width_hz: float = 5_000.0
    duration_center_s: float = 0.15
    duration_width_s: float = 0.03
    slope_center_hz_per_s: float = 200_000.0
    slope_width_hz_per_s: float = 80_000.0
    amplitude_center: float = 0.2  # peak amplitude (fraction of full scale) an amplitude cluster prefers
    amplitude_width: float = 0.05
    # non-frequency clusters planted besides the bands, any of "duration", "fm_slope", "amplitude"
    extra_clusters: tuple[str, ...] = ("duration", "fm_slope")
    units_per_cluster: int = 6
    n_untuned: int = 6
    n_mua: int = 4
    n_noise: int = 2
    baseline_hz: tuple[float, float] = (2.0, 8.0)
    gain_hz: tuple[float, float] = (40.0, 80.0)
    latency_s: tuple[float, float] = (0.005, 0.025)
    response_tail_s: float = 0.02  # must stay below the shortest syllable gap (windows never overlap)
    refractory_s: float = 0.002
    mua_baseline_hz: tuple[float, float] = (10.0, 20.0)
    noise_baseline_hz: tuple[float, float] = (20.0, 40.0)
    slow_drift_period_s: float = 60.0
    slow_drift_gain: tuple[float, float] = (0.5, 0.9)  # rate *= 1 + gain * sin(2 pi t / period + phase)

    # --- probe geometry (Phy files)
    n_channels: int = 32
    channel_pitch_um: float = 20.0
    template_samples: int = 82

    # --- clocks and TTL sync
    clock_offset_s: tuple[float, float] = (0.01, 0.5)
    clock_drift: tuple[float, float] = (-20e-6, 20e-6)
    sync_interval_s: tuple[float, float] = (0.5, 1.5)
    sync_drop_fraction: float = 0.02
    sync_jitter_s: float = 20e-6
    neural_tail_s: float = 0.5  # the neural recording outlasts the audio by this much

    def to_dict(self) -> dict:
        """JSON-ready copy (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, where: str = "synth config") -> "SynthConfig":
        """A config from ``to_dict()``-style values (lists become tuples); unknown keys or a bad
        non-frequency cluster name are an InputError naming ``where``."""
        from mmneuro.errors import InputError

        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(where, f"unknown synth setting(s) {', '.join(unknown)}")

        def tupled(v):
            return tuple(tupled(x) for x in v) if isinstance(v, list) else v

        config = cls(**{k: tupled(v) for k, v in values.items()})
        bad = sorted(set(config.extra_clusters) - set(EXTRA_CLUSTERS))
        if bad:
            raise InputError(where, f"extra_clusters: unknown {', '.join(bad)}; allowed: {', '.join(EXTRA_CLUSTERS)}")
        return config


EXTRA_CLUSTERS = ("duration", "fm_slope", "amplitude")
