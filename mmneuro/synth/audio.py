"""The session's WAV: planted syllables over white + low-frequency background noise, written in chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmneuro.synth.config import SynthConfig
from mmneuro.synth.syllables import syllable_waveform

INT16_FULL_SCALE = 32767


def write_audio(path: Path, syllables: list[dict], duration_s: float, seed_seq: np.random.SeedSequence,
                config: SynthConfig, progress=None) -> None:
    """Write a mono 16-bit PCM WAV of ``duration_s`` seconds at ``config.audio_rate_hz`` to ``path``.

    Memory stays bounded by one chunk (``config.chunk_s``); noise is seeded per chunk and the
    low-pass filter state is carried across chunks, so the output does not depend on chunking
    beyond the chunk length itself. ``progress`` is called with the seconds written per chunk.
    """
    import soundfile as sf
    from scipy import signal

    fs = config.audio_rate_hz
    n_total = int(round(duration_s * fs))
    chunk = int(config.chunk_s * fs)
    n_chunks = -(-n_total // chunk)
    # 4th-order Butterworth low-pass of white noise: the handling / cage noise below ~20 kHz.
    sos = signal.butter(4, config.low_noise_cutoff_hz, fs=fs, output="sos")
    low_gain = config.low_noise_rms / _noise_gain(sos)
    zi = np.zeros((sos.shape[0], 2))
    onsets = np.array([s["onset_s"] for s in syllables]) * fs
    with sf.SoundFile(path, "w", samplerate=fs, channels=1, subtype="PCM_16", format="WAV") as wav:
        for i, chunk_seed in enumerate(seed_seq.spawn(n_chunks)):
            lo, hi = i * chunk, min((i + 1) * chunk, n_total)
            rng = np.random.default_rng(chunk_seed)
            x = config.white_noise_rms * rng.standard_normal(hi - lo)
            low, zi = signal.sosfilt(sos, rng.standard_normal(hi - lo), zi=zi)
            x += low_gain * low
            # Syllables overlapping this chunk (sorted by onset, none longer than 1 s); synthesised
            # on demand rather than kept, so memory does not grow with the session's length.
            for k in range(np.searchsorted(onsets, lo - fs), np.searchsorted(onsets, hi)):
                first, wave = syllable_waveform(syllables[k], fs, config)
                a, b = max(first, lo), min(first + len(wave), hi)
                if a < b:
                    x[a - lo:b - lo] += wave[a - first:b - first]
            wav.write(np.round(np.clip(x, -1.0, 1.0) * INT16_FULL_SCALE).astype(np.int16))
            if progress is not None:
                progress((hi - lo) / fs)


def _noise_gain(sos: np.ndarray) -> float:
    """RMS of the filter's output for unit-variance white input: sqrt(sum of squared impulse response)."""
    from scipy import signal

    impulse = np.zeros(20_000)
    impulse[0] = 1.0
    return float(np.sqrt(np.sum(signal.sosfilt(sos, impulse) ** 2)))
