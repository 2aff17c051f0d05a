"""Benchmark of the audio stage: throughput (x real time) and peak RSS, vs vocalpy's AVA segmenter.

    .venv/bin/python benchmarks/bench_audio.py [--minutes 10 60] [--no-peer] [--planted-s 60]

Writes 250 kHz int16 recordings (white + low-frequency noise, one 20-200 ms tone sweep per second
on average) to a temporary directory, deleted afterwards. Each measurement runs in a fresh
subprocess, which reports its own peak RSS, so runs do not inherit each other's memory:
  - ours: segmentation + spectrograms + features streamed to syllables.nc (``write_syllables``) and
    the CSV write, as ``mmneuro audio`` runs them (on 1 and on ``--workers`` threads), and
    segmentation alone (``segment_file``), in ``--rounds`` rounds side by side (benchmarks/rounds.py:
    machine and load, min / median / max, ratio per round); the table shows each one's median round;
    "in-process" times the library calls only, "whole process" includes interpreter start-up and
    imports, "CPU" divides by the in-process CPU time (what a machine shared with other jobs
    cannot take away); the 1-minute load average is printed before each run;
  - peer: ``vocalpy.segment.ava`` (segmentation only) with AVA's mouse settings, smallest file only;
  - boundaries and splits (``--planted-s``): the default preset on each family of
    ``mmneuro.audio.planted`` (close neighbours 2-20 ms apart, soft onsets, jumps, hum, 250/300 kHz),
    two seeds of ``--planted-s`` seconds each: boundary errors (median, 95th percentile, worst),
    F1, isolated syllables found on their own, and the split rate by gap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 250_000

OURS = """
import json, resource, sys, time
from mmneuro.audio import segment_file, write_syllables
wav, out, mode, workers = sys.argv[1:5]
t1, c1 = time.perf_counter(), time.process_time()
if mode == "segment":
    n = len(segment_file(wav, {"workers": int(workers)}))
else:
    table = write_syllables(wav, "bench", out, {"workers": int(workers)}).table
    table.to_csv(out + ".csv", index=False)
    n = len(table)
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"inprocess_s": t2 - t1, "cpu_s": c2 - c1, "n_syllables": n,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PEER = """
import json, resource, sys, time
import vocalpy
t1 = time.perf_counter()
sound = vocalpy.Sound.read(sys.argv[1])
seg = vocalpy.segment.ava(sound, nperseg=1024, noverlap=512, min_freq=30e3, max_freq=110e3,
                          spect_min_val=2.0, spect_max_val=6.0, thresh_lowest=1.5, thresh_min=2.0,
                          thresh_max=2.5, min_dur=0.03, max_dur=0.2, use_softmax_amp=False,
                          smoothing_timescale=0.007)
t2 = time.perf_counter()
print(json.dumps({"inprocess_s": t2 - t1, "n_syllables": int(len(seg.start_inds)),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_recording(path: Path, minutes: float, seed: int = 0) -> int:
    """Write the benchmark WAV in 10 s chunks (bounded memory); returns the number of calls."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n_total = int(minutes * 60 * SR)
    chunk = 10 * SR
    sos = butter(4, 8_000, fs=SR, output="sos")
    zi = np.zeros((sos.shape[0], 2))
    n_calls = 0
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16", format="WAV") as f:
        for lo in range(0, n_total, chunk):
            n = min(chunk, n_total - lo)
            x = 0.01 * rng.standard_normal(n)
            low, zi = sosfilt(sos, rng.standard_normal(n), zi=zi)
            x += 0.2 * low
            # Calls placed within the chunk so none crosses a chunk edge of the generator.
            for start in np.sort(rng.uniform(0.1, n / SR - 0.3, rng.poisson(n / SR))):
                dur = rng.uniform(0.02, 0.2)
                f0, f1 = rng.uniform(40_000, 100_000, 2)
                t = np.arange(int(dur * SR)) / SR
                i = int(start * SR)
                x[i:i + len(t)] += rng.uniform(0.03, 0.3) * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / dur * t**2))
                n_calls += 1
            f.write(np.round(np.clip(x, -1, 1) * 32767).astype(np.int16))
    return n_calls


def planted_report(tmp: Path, seconds: float, seeds: int = 2) -> None:
    """Print the boundary-error / F1 table per planted family and the split rate by gap."""
    from mmneuro.audio import segment_file
    from mmneuro.audio.planted import FAMILIES, score, split_rate_by_gap, summary, write_planted

    print("\n| family | syllables | F1 (worst seed) | onset error median (abs median, p95, worst) ms "
          "| offset error median (abs median, p95, worst) ms | gaps >= 5 ms to both: on own |")
    print("|---|---|---|---|---|---|")
    every = []
    for family in (*FAMILIES, None):
        if family is None:
            scores, name = every, "all"
        else:
            scores, name = [], family.name
            for seed in range(seeds):
                wav = tmp / f"planted_{family.name}_{seed}.wav"
                truth = write_planted(wav, family, seed, seconds)
                scores.append(score(segment_file(wav), truth))
                wav.unlink()
            every += scores
        s = summary(scores)
        on = np.concatenate([x["onset_err_s"] for x in scores]) * 1e3
        off = np.concatenate([x["offset_err_s"] for x in scores]) * 1e3
        print(f"| {name} | {s['n_planted']} | {s['f1_min']:.3f} | {s['onset_median_ms']:+.2f} ({s['onset_abs_median_ms']:.2f}, "
              f"{s['onset_abs_p95_ms']:.2f}, {np.abs(on).max():.1f}) | {s['offset_median_ms']:+.2f} "
              f"({s['offset_abs_median_ms']:.2f}, {s['offset_abs_p95_ms']:.2f}, {np.abs(off).max():.1f}) "
              f"| {s['isolated_on_own']:.3f} of {s['n_isolated']} |")
    rates = split_rate_by_gap(every)
    print("\n| gap (ms) | " + " | ".join(str(i) for i in rates.index) + " |")
    print("|---|" + "---|" * len(rates))
    print("| pairs | " + " | ".join(str(int(n)) for n in rates["pairs"]) + " |")
    print("| split | " + " | ".join(f"{r:.3f}" for r in rates["split_rate"]) + " |")


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON. Adds the wall time and
    the 1-minute load average just before the run."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc {proc.returncode}",
                "wall_s": wall}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": wall, "load_1min": load}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="*", default=[10.0, 60.0],
                        help="lengths of the throughput recordings (none: skip that part)")
    parser.add_argument("--no-peer", action="store_true", help="skip vocalpy (needs ~10 GiB for 10 min)")
    parser.add_argument("--planted-s", type=float, default=0.0,
                        help="seconds per planted close-neighbour recording (0: skip that part)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the mmneuro runs, side by side")
    parser.add_argument("--workers", type=int, default=2, help="the audio stage's threads in the second variant")
    args = parser.parse_args()
    from rounds import machine, run_rounds

    print(machine())
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_audio_") as tmp:
        for minutes in args.minutes:
            wav = Path(tmp) / f"rec_{minutes:g}min.wav"
            n_calls = write_recording(wav, minutes)
            audio_s = minutes * 60
            runs: dict[str, list[dict]] = {}

            def ours(mode: str, workers: int, name: str):
                def run() -> float:
                    out = run_child(OURS, str(wav), str(Path(tmp) / "out.nc"), mode, str(workers))
                    if "error" in out:
                        raise SystemExit(f"{name}: {out['error']}")
                    runs.setdefault(name, []).append(out)
                    return out["inprocess_s"]
                return run

            variants = {"full": ("full", 1), f"full, workers={args.workers}": ("full", args.workers),
                        "segmentation only": ("segment", 1)}  # full: segment + spectrograms + write
            run_rounds({name: ours(mode, w, name) for name, (mode, w) in variants.items()}, args.rounds,
                       baseline=next(iter(variants)), label=f"{minutes:g} min, in-process: ")
            for tool, done in runs.items():  # the table shows each variant's median round
                median = sorted(done, key=lambda r: r["inprocess_s"])[len(done) // 2]
                rows.append({"tool": f"mmneuro ({tool})", "minutes": minutes, "planted": n_calls, **median})
                print(json.dumps(rows[-1]), flush=True)
            if not args.no_peer and minutes == min(args.minutes):
                peer = run_child(PEER, str(wav))
                rows.append({"tool": "vocalpy.segment.ava (segmentation only)", "minutes": minutes,
                             "planted": n_calls, **peer})
                print(json.dumps(rows[-1]), flush=True)
            wav.unlink()
    if rows:
        print_throughput(rows)
    if args.planted_s > 0:
        with tempfile.TemporaryDirectory(prefix="bench_planted_") as tmp:
            planted_report(Path(tmp), args.planted_s)
    return 0


def print_throughput(rows: list[dict]) -> None:
    print("\n| tool | audio | syllables (planted) | x real time, whole process | x real time, in-process "
          "| x real time, in-process CPU | peak RSS | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        audio_s = r["minutes"] * 60
        if "error" in r:
            print(f"| {r['tool']} | {r['minutes']:g} min | failed: {r['error']} | | | | | |")
            continue
        cpu = f"{audio_s / r['cpu_s']:.0f}x" if "cpu_s" in r else "-"
        print(f"| {r['tool']} | {r['minutes']:g} min | {r['n_syllables']} ({r['planted']}) "
              f"| {audio_s / r['wall_s']:.0f}x | {audio_s / r['inprocess_s']:.0f}x | {cpu} "
              f"| {r['peak_rss_mib']:.0f} MiB | {r['load_1min']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
