"""Syllable boundaries below the frame hop, and close neighbours split, from a short-window STFT.

The segmenter's frames (4 ms window, 2 ms hop, 2 ms smoothing) place a boundary at the first frame
whose smoothed amplitude is below the edge threshold: several ms outside the syllable, and two
syllables less than ~10 ms apart share their boundary frames. Here each boundary is looked at again
in a short window (``edge_window_s``, 1 ms) every ``edge_hop_s`` (0.5 ms), only around that
boundary: the peak level over the band (dB above the noise floor) is followed from inside the
syllable outwards to where it falls below the edge level, and the crossing is interpolated between
the two frames around it. The short window spreads a boundary by at most half its length, instead of
the long window's half plus the smoothing.

The same trace decides splits: a local minimum of the smoothed amplitude inside a syllable is a gap
if the short-window level stays below the edge level there for ``edge_gap_s`` (in 90 % of the
frames); a frequency jump
without a pause keeps the level up and does not split.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

from mmneuro.audio.features import noise_peak_db
from mmneuro.audio.stft import BLOCK_FRAMES, FrameGrid, band_power_db, frame_grid, strided_frames
from mmneuro.audio.wav import WavInfo, span_reader

# Boundaries measured per batch: 64 regions of ~20 frames of 256 float32 samples are 1.3 MiB.
BATCH_REGIONS = 64


class EdgeFinder:
    """Short-window look at a recording around chosen times (see module docstring)."""

    def __init__(self, wav: WavInfo, grid: FrameGrid, floor_db: np.ndarray, params: dict):
        self.wav, self.grid, self.params = wav, grid, params
        self.fine = frame_grid(wav.sample_rate_hz, {**params, "window_s": params["edge_window_s"],
                                                    "hop_s": params["edge_hop_s"]})
        # White noise puts power sum(w^2) (3N/8 for Hann) into each bin, so the short window's floor
        # is the long window's, read at its bins, scaled by the ratio of the window lengths.
        self.floor_db = (np.interp(self.fine.freq_hz, grid.freq_hz, floor_db)
                         + 10 * np.log10(self.fine.nperseg / grid.nperseg)).astype(np.float32)
        edge_db = params["level_lo_db"] + params["edge_threshold"] * (params["level_hi_db"] - params["level_lo_db"])
        # Above the loudest of the band's noise bins in 99 % of noise-only frames.
        self.threshold_db = max(edge_db, noise_peak_db(len(self.fine.freq_hz)))

    def levels(self, first_centre: np.ndarray, n: int):
        """Yield (rows, level_db) per batch: peak level over the band (dB above floor) of ``n`` short
        frames every edge hop from absolute sample ``first_centre[k]`` on, shape (batch, n).

        One batch after another, not on ``params["workers"]`` threads: each batch is BATCH_REGIONS short
        reads in Python, and two threads contending for the GIL took twice the time of one (split and
        refine of a 10-min file: 0.05 s in one thread, 0.09-0.13 s on two; 2026-12-06)."""
        fine = self.fine
        span = (n - 1) * fine.hop + fine.nperseg
        with span_reader(self.wav) as read:  # one open file for all batches
            for lo in range(0, len(first_centre), BATCH_REGIONS):
                starts = first_centre[lo:lo + BATCH_REGIONS] - fine.nperseg // 2
                frames = np.concatenate([strided_frames(read(s, s + span), fine) for s in starts])
                peak = np.empty(len(frames), np.float32)
                for b in range(0, len(frames), 4 * BLOCK_FRAMES):
                    power = band_power_db(frames[b:b + 4 * BLOCK_FRAMES], fine)
                    power -= self.floor_db
                    peak[b:b + len(power)] = power.max(axis=1)
                yield slice(lo, lo + len(starts)), peak.reshape(len(starts), n)

    def _grid(self, start_s: np.ndarray, span_s: float):
        """Absolute centre sample of each region's first short frame, and the frames per region."""
        sr, hop = self.wav.sample_rate_hz, self.fine.hop
        return np.round(start_s * sr).astype(np.int64), int(np.ceil(span_s * sr / hop)) + 1

    def split(self, amp: np.ndarray, on: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame-level syllables (on, off) split at every local minimum of ``amp`` inside them where the
        short-window level stays below the edge level for ``edge_gap_s``."""
        p, grid = self.params, self.grid
        if len(on) == 0:
            return on, off
        wlen = int(4 * p["window_s"] * grid.sample_rate_hz / grid.hop) | 1  # prominence within ±2 windows
        minima, _ = find_peaks(-amp, prominence=p["split_prominence"], wlen=wlen)
        owner = np.searchsorted(on, minima, side="right") - 1
        inside = (owner >= 0) & (minima > on[np.maximum(owner, 0)]) & (minima < off[np.maximum(owner, 0)])
        minima = minima[inside]
        if len(minima) == 0:
            return on, off
        reach_s = p["window_s"]  # the gap is looked for within one long window of the minimum
        first, n = self._grid(grid.frame_time_s(minima) - reach_s, 2 * reach_s)
        run = max(1, int(round(p["edge_gap_s"] * grid.sample_rate_hz / self.fine.hop)))
        gap = np.zeros(len(minima), bool)
        for rows, level in self.levels(first, n):
            below = np.zeros((len(level), n + 1), np.int32)
            np.cumsum(level < self.threshold_db, axis=1, out=below[:, 1:])
            # 90 % of the frames, not all: a noise-only frame tops the edge level 1 % of the time.
            gap[rows] = (below[:, run:] - below[:, :-run] >= 0.9 * run).any(axis=1)
        cuts = minima[gap]
        return np.sort(np.r_[on, cuts]), np.sort(np.r_[cuts, off])

    def refine(self, amp: np.ndarray, on: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Onset and offset times (s, audio clock) of the frame-level syllables (on, off)."""
        grid, p = self.grid, self.params
        t_on, t_off = grid.frame_time_s(on), grid.frame_time_s(off)
        onset_s, offset_s = self._coarse(amp, on, +1), self._coarse(amp, off, -1)
        if len(on) == 0:
            return onset_s, offset_s
        mid = (t_on + t_off) / 2
        dt = self.fine.hop / self.wav.sample_rate_hz
        reach, back = 2 * p["window_s"], p["window_s"] / 2
        # Onsets: frames from just outside the boundary frame inwards, up to the syllable's middle.
        first, n = self._grid(t_on - back, reach + back)
        inner = np.floor((np.minimum(mid, t_on + reach) - first / self.wav.sample_rate_hz) / dt).astype(int)
        for rows, level in self.levels(first, n):
            found, t = _rising_edge(level, inner[rows], self.threshold_db)
            onset_s[rows] = np.where(found, first[rows] / self.wav.sample_rate_hz + t * dt, onset_s[rows])
        # Offsets: the same, mirrored (frames from the outside inwards, time running backwards).
        last, n = self._grid(t_off + back, reach + back)
        first = last - (n - 1) * self.fine.hop
        inner = np.floor((last / self.wav.sample_rate_hz - np.maximum(mid, t_off - reach)) / dt).astype(int)
        for rows, level in self.levels(first, n):
            found, t = _rising_edge(level[:, ::-1], inner[rows], self.threshold_db)
            offset_s[rows] = np.where(found, last[rows] / self.wav.sample_rate_hz - t * dt, offset_s[rows])
        return onset_s, offset_s

    def _coarse(self, amp: np.ndarray, boundary: np.ndarray, inward: int) -> np.ndarray:
        """Frame-level boundary times, moved to where ``amp`` crosses the edge threshold between the
        boundary frame and its inward neighbour (linear interpolation); the fallback of refine."""
        edge = self.params["edge_threshold"]
        a = amp[boundary]
        b = amp[np.clip(boundary + inward, 0, len(amp) - 1)]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where((a < edge) & (b > a), (edge - a) / (b - a), 0.0)
        return self.grid.frame_time_s(boundary) + inward * np.clip(frac, 0, 1) * self.grid.hop / self.grid.sample_rate_hz


def _rising_edge(level: np.ndarray, inner: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``level`` (frames ordered from outside the syllable inwards, valid up to ``inner``):
    whether a rising crossing of ``threshold`` was found, and its position in frames (interpolated).

    The crossing is the last frame below threshold before the innermost frame above it, so noise
    peaks outside the syllable do not move it.
    """
    n = level.shape[1]
    j = np.arange(n)
    valid = j[None, :] <= inner[:, None]
    above = (level >= threshold) & valid
    anchor = n - 1 - np.argmax(above[:, ::-1], axis=1)
    below = (level < threshold) & (j[None, :] < anchor[:, None])
    cross = n - 1 - np.argmax(below[:, ::-1], axis=1)
    found = above.any(axis=1) & below.any(axis=1)
    rows = np.arange(len(level))
    lo, hi = level[rows, cross], level[rows, np.minimum(cross + 1, n - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.clip(np.where(hi > lo, (threshold - lo) / (hi - lo), 0.5), 0, 1)
    return found, cross + frac
