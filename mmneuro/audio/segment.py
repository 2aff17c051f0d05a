"""Amplitude segmentation of USV recordings into syllables, after AVA (Goffinet et al. 2021).

Pipeline per STFT frame: log-power in the band minus the per-frequency noise floor (dB),
clipped between ``level_lo_db`` and ``level_hi_db`` and rescaled to [0, 1], pooled over frequency
(softmax-weighted mean or plain mean: both stay in [0, 1] whatever the band width or nperseg,
unlike AVA's sum), smoothed with a Gaussian over time, then AVA's three-threshold rule:
local maxima above ``peak_threshold`` seed syllables, which extend left and right up to the first
frame below ``edge_threshold`` or local minimum below ``dip_threshold``. We find those frames for
all peaks at once with running max/min scans, so the cost is linear in the recording's length
whatever the thresholds (AVA and vocalpy rescan from every peak).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

from mmneuro.audio.presets import resolve_params
from mmneuro.audio.edges import EdgeFinder
from mmneuro.audio.stft import FrameGrid, band_power, frame_grid, iter_frame_blocks, noise_floor_db, ordered_map
from mmneuro.audio.wav import WavInfo, open_wav


def pooled_amplitude(power: np.ndarray, floor_db: np.ndarray, params: dict) -> np.ndarray:
    """Amplitude in [0, 1] per frame from the band's power (frames, freq; linear, float32) and the noise
    floor (freq,), dB."""
    # level = (10 log10(power) - floor - level_lo) / (level_hi - level_lo), as one scale and one offset;
    # a power of 0 gives -inf, clipped to 0 like any level below the floor's
    scale = np.float32(1.0 / (params["level_hi_db"] - params["level_lo_db"]))
    with np.errstate(divide="ignore"):
        level = np.log10(power)
    level *= np.float32(10.0) * scale
    level -= (floor_db + np.float32(params["level_lo_db"])) * scale
    np.clip(level, 0.0, 1.0, out=level)
    if params["pooling"] == "mean":
        return level.mean(axis=1)
    # AVA's softmax amplitude: sum_f s_f softmax(s / T)_f. With s in [0, 1], exp(s / T) stays finite in
    # float32 unless T < 1/80; only then are each frame's levels shifted by their maximum.
    inverse_t = np.float32(1.0 / params["temperature"])
    weights = np.multiply(level, inverse_t)
    if inverse_t > 80:
        weights -= weights.max(axis=1, keepdims=True)
    np.exp(weights, out=weights)
    return np.einsum("ij,ij->i", level, weights) / weights.sum(axis=1)


def amplitude_trace(wav: WavInfo, grid: FrameGrid, floor_db: np.ndarray, params: dict,
                    progress: bool = False) -> np.ndarray:
    """Smoothed amplitude (float32, one value per STFT frame) of the whole file, read in chunks.

    Memory: one chunk of audio plus 4 bytes per frame (about 7 MB per hour at a 2 ms hop).
    """
    amp = np.zeros(grid.n_frames(wav.n_frames), dtype=np.float32)
    def amplitude(block):
        first, frames = block
        return first, pooled_amplitude(band_power(frames, grid), floor_db, params)

    chunks = ordered_map(amplitude, iter_frame_blocks(wav, grid, params["chunk_s"]), params.get("workers", 1))
    # Counts frames (exact integers) and displays them as seconds of audio.
    bar = tqdm(total=len(amp), unit="s audio", unit_scale=grid.hop / grid.sample_rate_hz, file=sys.stderr,
               disable=not progress, desc=f"segment {wav.path.name}", leave=False,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} [{elapsed}<{remaining}, {rate_fmt}]")
    with bar:
        for first, values in chunks:
            amp[first:first + len(values)] = values
            bar.update(len(values))
    sigma = params["smoothing_s"] * grid.sample_rate_hz / grid.hop
    if sigma > 0 and len(amp):
        gaussian_filter1d(amp, sigma, output=amp)  # in place: ndimage filters a copy of each line
    return amp


def find_segments(amp: np.ndarray, edge: float, dip: float, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """AVA's three-threshold rule on ``amp``: (onset, offset) frame indices, in order, no duplicates.

    A boundary frame is below ``edge`` or a local minimum below ``dip``; each local maximum above
    ``peak`` spans from the last boundary before it to the first boundary after it. Peaks with no
    boundary on one side (a call cut by the file's edge) are dropped, as in AVA.
    """
    n = len(amp)
    if n < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mid, left, right = amp[1:-1], amp[:-2], amp[2:]
    boundary = amp < edge
    boundary[1:-1] |= (mid < dip) & (mid <= left) & (mid <= right)
    peaks = np.flatnonzero((mid > peak) & (mid >= left) & (mid >= right)) + 1
    # Binary search in the sorted boundary frames: the last one before and the first one after
    # each peak (memory: the boundary list, not several full-length index arrays).
    frames = np.flatnonzero(boundary)
    before = np.searchsorted(frames, peaks, side="left") - 1
    after = np.searchsorted(frames, peaks, side="right")
    found = (before >= 0) & (after < len(frames))
    onsets, offsets = frames[before[found]], frames[after[found]]
    found = onsets >= 1  # AVA searches onsets down to frame 1 only
    onsets, offsets = onsets[found], offsets[found]
    # Peaks between the same two boundaries give the same syllable: keep it once.
    new = np.ones(len(onsets), bool)
    new[1:] = (onsets[1:] != onsets[:-1]) | (offsets[1:] != offsets[:-1])
    return onsets[new], offsets[new]


def merge_and_filter(onset_s: np.ndarray, offset_s: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """Merge syllables closer than ``min_gap_s``, then keep durations in [min_dur_s, max_dur_s].

    Merging first lets fragments of one call (split at a dip) pass the duration check together.
    """
    if len(onset_s) == 0:
        return onset_s, offset_s
    starts_new = np.ones(len(onset_s), bool)
    starts_new[1:] = onset_s[1:] - offset_s[:-1] >= params["min_gap_s"]
    on = onset_s[starts_new]
    off = np.maximum.reduceat(offset_s, np.flatnonzero(starts_new))
    dur = off - on
    keep = (dur >= params["min_dur_s"]) & (dur <= params["max_dur_s"])
    return on[keep], off[keep]


def segment_wav(wav: WavInfo, params: dict, progress: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    """Segment an opened WAV: (table of onset_s/offset_s, noise floor in dB per band bin)."""
    grid = frame_grid(wav.sample_rate_hz, params)
    floor_db = noise_floor_db(wav, grid, params)
    amp = amplitude_trace(wav, grid, floor_db, params, progress)
    on, off = find_segments(amp, params["edge_threshold"], params["dip_threshold"], params["peak_threshold"])
    edges = EdgeFinder(wav, grid, floor_db, params)
    on, off = edges.split(amp, on, off)
    onset_s, offset_s = edges.refine(amp, on, off)
    onset_s, offset_s = merge_and_filter(onset_s, offset_s, params)
    table = pd.DataFrame({"onset_s": onset_s.astype(np.float64), "offset_s": offset_s.astype(np.float64)})
    return table, floor_db


def segment_file(wav_path, params: dict | None = None, progress: bool = False) -> pd.DataFrame:
    """Syllables of the WAV at ``wav_path``: DataFrame with onset_s, offset_s (s, audio clock).

    params: parameters from :func:`resolve_params`, or overrides of the default preset.
    """
    params = resolve_params(overrides=params)
    wav = open_wav(wav_path, params["channel"], params["max_freq_hz"])
    return segment_wav(wav, params, progress)[0]
