"""Are deermouse's within-call pauses shallower or shorter than planted silent gaps? (issue 22)

    .venv/bin/python benchmarks/probe_pauses.py [--planted-s 60] [--seeds 2]

In the short-window trace the segmenter's split rule looks at (``EdgeFinder``: 1 ms window every
0.5 ms, dB above the noise floor), for each pause: the longest run of frames whose peak over the
band is below the edge level (±2 ms around the pause), the band power in that run (10 log10 of the
mean power over the band's bins / floor: white noise alone gives 10 log10(1 / ln 2) = 1.6 dB,
as the floor is the median), and the jump of the dominant frequency across it (loudest frame of
the 1.5 ms on each side). Pauses: in vocalpy's ``deermouse-go.wav``, the gaps that
``min_gap_s=0.002, edge_gap_s=0.001`` cuts inside a call of the default segmentation (vocalpy's
reference counts each such call once); in every ``mmneuro.audio.planted`` family, every planted
gap of 2-5 ms (true silence: only the noise is there).
"""

from __future__ import annotations

import argparse
import tempfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from mmneuro.audio import resolve_params
from mmneuro.audio.edges import EdgeFinder
from mmneuro.audio.planted import FAMILIES, write_planted
from mmneuro.audio.segment import segment_wav
from mmneuro.audio.stft import band_power_db, frame_grid, noise_floor_db, strided_frames
from mmneuro.audio.wav import open_wav, span_reader

PERMISSIVE = {"min_gap_s": 0.002, "edge_gap_s": 0.001}
PAD_S, SIDE_S = 0.002, 0.0015


def pause_stats(path, pauses) -> pd.DataFrame:
    """One row per (start_s, stop_s) pause of the WAV at ``path`` (see module docstring)."""
    p = resolve_params()
    wav = open_wav(path, p["channel"], p["max_freq_hz"])
    grid = frame_grid(wav.sample_rate_hz, p)
    edges = EdgeFinder(wav, grid, noise_floor_db(wav, grid, p), p)
    fine, sr = edges.fine, wav.sample_rate_hz
    side = int(round(SIDE_S * sr / fine.hop))
    rows = []
    with span_reader(wav) as read:
        for g0, g1 in pauses:
            a, b = int(round((g0 - PAD_S) * sr)), int(round((g1 + PAD_S) * sr))
            level = band_power_db(strided_frames(read(a - fine.nperseg // 2, b + fine.nperseg // 2), fine),
                                  fine) - edges.floor_db
            peak = level.max(axis=1)
            below = np.r_[False, peak < edges.threshold_db, False].astype(int)
            starts, stops = np.flatnonzero(np.diff(below) == 1), np.flatnonzero(np.diff(below) == -1)
            k = int(np.argmax(stops - starts))
            lo, hi = starts[k], stops[k]
            band = 10 * np.log10(np.mean(10 ** (level[lo:hi] / 10), axis=1))
            before, after = level[max(lo - side, 0):lo], level[hi:hi + side]
            df = (abs(fine.freq_hz[before[before.max(1).argmax()].argmax()]
                      - fine.freq_hz[after[after.max(1).argmax()].argmax()]) / 1e3
                  if len(before) and len(after) else np.nan)
            rows.append({"pause_ms": (g1 - g0) * 1e3, "run_ms": (hi - lo) * fine.hop / sr * 1e3,
                         "band_db_median": float(np.median(band)), "band_db_max": float(band.max()),
                         "peak_db_median": float(np.median(peak[lo:hi])), "df_khz": df})
    return pd.DataFrame(rows)


def deermouse_pauses(path) -> list[tuple[float, float]]:
    """Gaps the permissive setting cuts inside one call of the default segmentation."""
    calls, parts = (segment_wav(open_wav(path, p["channel"], p["max_freq_hz"]), p)[0]
                    for p in (resolve_params(), resolve_params(overrides=PERMISSIVE)))
    gaps = zip(parts["offset_s"].to_numpy()[:-1], parts["onset_s"].to_numpy()[1:])
    return [(g0, g1) for g0, g1 in gaps
            if ((calls["onset_s"] < g0) & (calls["offset_s"] > g1)).any()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planted-s", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    deer = str(files("vocalpy") / "examples" / "deermouse-go.wav")
    print("deermouse-go.wav, pauses inside one call:\n", pause_stats(deer, deermouse_pauses(deer)).round(2))
    rows = []
    with tempfile.TemporaryDirectory(prefix="probe_pauses_") as tmp:
        for family in FAMILIES:
            for seed in range(args.seeds):
                wav = Path(tmp) / f"{family.name}_{seed}.wav"
                truth = write_planted(wav, family, seed, args.planted_s)
                on, off = truth["onset_s"].to_numpy(), truth["offset_s"].to_numpy()
                gap = on[1:] - off[:-1]
                k = np.flatnonzero((gap >= 0.002) & (gap < 0.005))
                rows.append(pause_stats(wav, list(zip(off[k], on[k + 1]))).assign(family=family.name))
    planted = pd.concat(rows)
    planted["gap_ms"] = pd.cut(planted["pause_ms"], [2, 3, 4, 5], right=False)
    cols = ["run_ms", "band_db_median", "band_db_max", "peak_db_median", "df_khz"]
    def q(s):
        return f"{s.min():.2f} / {s.quantile(0.05):.2f} / {s.median():.2f} / {s.quantile(0.95):.2f} / {s.max():.2f}"
    print("\nplanted 2-5 ms gaps, min / 5 % / median / 95 % / max:")
    print(planted.groupby("gap_ms", observed=False)[cols].agg(q).T.to_string())
    print(planted.groupby("family")[cols].agg(q).T.to_string())
    print(f"\nplanted 2-5 ms gaps: {len(planted)}; band power at or below 0 dB (floor) in the run: "
          f"{(planted['band_db_median'] <= 0).mean():.3f}; dominant frequency within 3 kHz across: "
          f"{(planted['df_khz'] <= 3).mean():.3f}, within 10 kHz: {(planted['df_khz'] <= 10).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
