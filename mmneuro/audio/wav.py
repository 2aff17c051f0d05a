"""Checked, streamed WAV reading (soundfile): one channel as float32, in chunks or by time span.

Integer WAVs are scaled to [-1, 1] by soundfile; the stage only ever uses levels relative to the
recording's noise floor, so int16 and float WAVs of the same sound give the same results. The
whole-file pass reads 16-bit PCM (the usual USV recorder format) as the file's int16 values instead
(:func:`iter_chunks`); its consumer scales them by PCM16_SCALE as soundfile would.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from mmneuro.errors import InputError

WAV_FORMATS = ("WAV", "WAVEX", "W64", "RF64")
# Only float samples can be NaN/inf; integer PCM skips the check.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
CLIPPED_FRACTION = 0.01  # warn above this fraction of samples at full scale
PCM16_SCALE = 2.0 ** -15  # libsndfile's float value of one 16-bit PCM step


@dataclass(frozen=True)
class WavInfo:
    """What the stage needs to know about a WAV file (``channel``: the one analysed)."""

    path: Path
    sample_rate_hz: int
    n_frames: int
    n_channels: int
    channel: int
    subtype: str = "PCM_16"  # soundfile's sample format
    pcm16_offset: int | None = None  # byte offset of the samples of a RIFF 16-bit PCM WAV, else None

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate_hz


def open_wav(path: str | Path, channel: int | None, max_freq_hz: float) -> WavInfo:
    """Check ``path`` is a complete WAV whose rate covers ``max_freq_hz`` and pick its channel.

    channel: 0-based index; None is allowed only for mono files. Raises InputError otherwise.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a directory, not a WAV file")
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as err:
        raise InputError(path, f"not a readable WAV file ({err})") from None
    if info.format not in WAV_FORMATS:
        raise InputError(path, f"not a WAV file (format {info.format})")
    data_offset = _check_not_truncated(path)
    if info.channels > 1 and channel is None:
        raise InputError(path, f"has {info.channels} channels; choose one with the 'channel' "
                               f"parameter (--channel N, 0-based)")
    channel = 0 if channel is None else channel
    if not 0 <= channel < info.channels:
        raise InputError(path, f"channel {channel} requested but the file has {info.channels}")
    if info.samplerate < 2 * max_freq_hz:
        raise InputError(path, f"sampling rate {info.samplerate} Hz is too low for the band's upper "
                               f"edge max_freq_hz={max_freq_hz:g} (needs >= {2 * max_freq_hz:g} Hz)")
    pcm16_offset = data_offset if info.subtype == "PCM_16" and info.format in ("WAV", "WAVEX") else None
    return WavInfo(path, int(info.samplerate), int(info.frames), int(info.channels), channel, info.subtype,
                   pcm16_offset)


def read_span(wav: WavInfo, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of the chosen channel as float32, zero-padded outside the file."""
    with span_reader(wav) as read:
        return read(start, stop)


@contextlib.contextmanager
def span_reader(wav: WavInfo) -> Iterator[Callable[[int, int], np.ndarray]]:
    """Keep the file open and yield ``read(start, stop)``, as :func:`read_span` without reopening it
    for every syllable."""
    with _sample_reader(wav) as read_samples:
        def read(start: int, stop: int) -> np.ndarray:
            out = np.zeros(stop - start, dtype=np.float32)
            lo, hi = max(start, 0), min(stop, wav.n_frames)
            if hi > lo:
                samples = read_samples(lo, hi - lo)
                if samples.dtype == np.int16:
                    np.multiply(samples, np.float32(PCM16_SCALE), out=out[lo - start:hi - start])
                else:
                    out[lo - start:hi - start] = samples
            return out
        yield read


def iter_chunks(wav: WavInfo, step: int, overlap: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, samples)`` chunks of ``step + overlap`` samples starting every ``step``.

    Consecutive chunks share ``overlap`` samples, so a fixed-length frame grid laid over each chunk
    continues exactly across chunk edges. Only one chunk is held in memory at a time. Samples are as
    :func:`_sample_reader` reads them: int16 for 16-bit PCM (x PCM16_SCALE gives soundfile's floats).
    """
    float_samples = wav.subtype in FLOAT_SUBTYPES
    # integer samples: within 1 LSB of 16-bit full scale (int16 as read for 16-bit PCM, else floats)
    full_scale = 0x7FFF if wav.subtype == "PCM_16" else 1.0 if float_samples else 1.0 - PCM16_SCALE
    n_clipped = 0
    with _sample_reader(wav) as read:
        for start in range(0, wav.n_frames, step):
            block = read(start, step + overlap)
            if float_samples and not np.isfinite(block).all():
                first = start + int(np.argmin(np.isfinite(block)))
                raise InputError(wav.path, f"non-finite sample (NaN/inf) at t={first / wav.sample_rate_hz:.6f} s")
            n_clipped += int(np.count_nonzero(block[:step] >= full_scale) + np.count_nonzero(block[:step] <= -full_scale))
            yield start, block
    if wav.n_frames and n_clipped > CLIPPED_FRACTION * wav.n_frames:
        warnings.warn(f"{wav.path}: {100 * n_clipped / wav.n_frames:.1f} % of samples are at full scale (clipped "
                      "recording): levels and spectrograms of loud sounds are wrong", stacklevel=2)


@contextlib.contextmanager
def _sample_reader(wav: WavInfo) -> Iterator[Callable[[int, int], np.ndarray]]:
    """Yield ``read(start, n)``: up to ``n`` samples of the chosen channel from sample ``start`` on.

    16-bit PCM comes as the file's int16 values: libsndfile's float32 for them is int * (1/0x8000), so
    x PCM16_SCALE gives the same values exactly (a power of two). In a RIFF WAV they are read straight
    from the file, 4x faster than soundfile's read plus a conversion; other formats come through
    soundfile, as float32.
    """
    if wav.pcm16_offset is not None:
        with open(wav.path, "rb") as raw:
            def read(start: int, n: int) -> np.ndarray:
                n = max(0, min(n, wav.n_frames - start))
                raw.seek(wav.pcm16_offset + 2 * wav.n_channels * start)
                return np.fromfile(raw, dtype="<i2", count=n * wav.n_channels).reshape(n, wav.n_channels)[:, wav.channel]
            yield read
        return
    with sf.SoundFile(str(wav.path)) as f:
        dtype = "int16" if f.subtype == "PCM_16" else "float32"

        def read(start: int, n: int) -> np.ndarray:
            f.seek(start)
            return np.ascontiguousarray(f.read(n, dtype=dtype, always_2d=True)[:, wav.channel])
        yield read


def _check_not_truncated(path: Path) -> int | None:
    """libsndfile silently shortens a truncated WAV; compare the RIFF data chunk with the file size.

    Returns the data chunk's byte offset in a RIFF WAV (None for other layouts).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64/W64 or other layouts: leave the checks to libsndfile
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                present = size - pos - 8
                if chunk_size == 0 and present > 0:
                    # a recorder that crashed (or streamed) before writing the size: libsndfile would read 0 s
                    raise InputError(path, f"the WAV header declares 0 data bytes but {present} bytes follow it "
                                           "(the recorder never finished the header); set the data chunk's "
                                           f"size to {present} in a copy and use that")
                if chunk_size != 0xFFFFFFFF and pos + 8 + chunk_size > size:
                    raise InputError(path, f"truncated WAV: data chunk declares {chunk_size} bytes but "
                                           f"only {size - pos - 8} are present")
                return pos + 8
            pos += 8 + chunk_size + (chunk_size & 1)
    return None
