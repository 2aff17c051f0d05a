"""Benchmark of the neural stage's binning: 10 M spikes x 400 units x 20,000 syllables.

Times ``bin_counts`` (onset window + total counts) and a straightforward per-syllable loop
reference (global time-sorted spikes, one searchsorted + bincount per syllable) side by side in
rounds (benchmarks/rounds.py: machine and load, min / median / max, ratio per round), checking
that both give the same counts. Peak memory is measured with tracemalloc
(numpy reports its buffers to it) in a second call, so tracing does not slow the timed one.

    .venv/bin/python benchmarks/bench_binning.py [--spikes 10e6 --units 400 --syllables 20000]
        [--workers 2]        # also bin_counts on 2 threads
        [--base /tmp/base]   # also the bin_counts of another checkout (git worktree add /tmp/base 40e7d07)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd


def synthetic(n_spikes: int, n_units: int, n_syllables: int, seed: int = 0):
    """Poisson-like units over an hour and syllables in bouts (60-150 ms apart), as in real USVs."""
    from pathlib import Path

    from mmneuro.neural.readers import Units

    rng = np.random.default_rng(seed)
    duration = 3600.0
    per_unit = np.full(n_units, n_spikes // n_units)
    per_unit[: n_spikes - per_unit.sum()] += 1
    times = np.concatenate([np.sort(rng.uniform(0, duration, n)) for n in per_unit])
    units = Units(
        unit_ids=np.arange(n_units, dtype=np.int64), labels=np.full(n_units, "good"), spike_times_s=times,
        unit_ptr=np.concatenate([[0], np.cumsum(per_unit)]).astype(np.int64), recording_s=(0.0, duration),
        n_outside=np.zeros(n_units, np.int64), source="synthetic", fmt="table",
    )
    n_bouts = max(1, n_syllables // 20)
    bout_start = np.sort(rng.uniform(1.0, duration - 5.0, n_bouts))
    in_bout = np.arange(n_syllables) % 20
    onset = np.sort(bout_start[np.arange(n_syllables) // 20 % n_bouts] + in_bout * rng.uniform(0.06, 0.15, n_syllables))
    offset = onset + rng.uniform(0.02, 0.15, n_syllables)
    return units, pd.DataFrame({"onset_s": onset, "offset_s": offset})


def per_syllable_reference(units, onset_neural: np.ndarray, rel_edges: np.ndarray, scale: float) -> np.ndarray:
    """One Python iteration per syllable over all units' spikes merged in time order."""
    from mmneuro.neural.binning import bin_edges

    order = np.argsort(units.spike_times_s, kind="stable")
    t_all = units.spike_times_s[order]
    u_all = np.repeat(np.arange(len(units)), units.n_spikes)[order]
    n_bins = rel_edges.size - 1
    edges = bin_edges(onset_neural + rel_edges[0] * scale, np.full(onset_neural.size, (rel_edges[1] - rel_edges[0]) * scale), n_bins)
    out = np.zeros((onset_neural.size, len(units), n_bins), np.int32)
    for s, row in enumerate(edges):
        lo, hi = np.searchsorted(t_all, row[[0, -1]])
        b = np.searchsorted(row, t_all[lo:hi], side="right") - 1
        out[s] = np.bincount(u_all[lo:hi] * n_bins + b, minlength=len(units) * n_bins).reshape(len(units), n_bins)
    return out


def load_binning(checkout: str):
    """mmneuro/neural/binning.py of another checkout as a module of its own (the rest of mmneuro is this one's)."""
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("base_binning", Path(checkout) / "mmneuro/neural/binning.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spikes", type=float, default=10e6)
    parser.add_argument("--units", type=int, default=400)
    parser.add_argument("--syllables", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (reference, bin_counts), side by side")
    parser.add_argument("--reference-syllables", type=int, default=None, help="limit the reference loop (default: all)")
    parser.add_argument("--workers", type=int, default=1, help="also time bin_counts on this many threads")
    parser.add_argument("--base", default=None, help="another checkout whose bin_counts runs in the same rounds")
    args = parser.parse_args()

    from rounds import machine, ratios, run_rounds, summary, timed

    from mmneuro.neural import BinParams, ClockFit, bin_counts

    print(machine())
    units, syllables = synthetic(int(args.spikes), args.units, args.syllables)
    params, clock = BinParams(), ClockFit(0.0371, 2e-5)
    print(f"{units.spike_times_s.size:,} spikes, {len(units)} units, {len(syllables):,} syllables, "
          f"{params.n_bins} bins -> counts {len(syllables) * len(units) * params.n_bins * 4 / 2**20:.0f} MiB int32")

    # Warm-up on a few syllables: xarray imports its optional backends on first use.
    bin_counts(units.select(np.arange(len(units)) < 2), syllables[:10], params, clock, session="bench", progress=False)
    n_ref = args.reference_syllables or len(syllables)
    onset_neural = clock.to_neural(syllables["onset_s"].to_numpy()[:n_ref])
    out = {}

    def ours(workers=1, key="ours"):
        out[key] = None  # free the last round's counts first
        out[key] = bin_counts(units, syllables, params, clock, session="bench", progress=False,
                              workers=workers)["counts"].values

    def reference():
        out["reference"] = None
        out["reference"] = per_syllable_reference(units, onset_neural, params.relative_edges_s(), 1 + clock.drift)

    cpu: dict[str, list[float]] = {}

    def timed_cpu(name, fn):
        """timed(fn), also keeping the process's CPU seconds (user + system), which a loaded machine stretches less."""
        def run() -> float:
            before = time.process_time()
            seconds = timed(fn)()
            cpu.setdefault(name, []).append(time.process_time() - before)
            return seconds
        return run

    variants = {"reference": timed_cpu("reference", reference), "bin_counts": timed_cpu("bin_counts", ours)}
    if args.workers > 1:
        name = f"bin_counts workers={args.workers}"
        variants[name] = timed_cpu(name, lambda: ours(args.workers, "threads"))
    if args.base:
        base = load_binning(args.base)

        def theirs():
            out["base"] = None
            out["base"] = base.bin_counts(units, syllables, dataclasses.asdict(params), clock, session="bench",
                                          progress=False)["counts"].values

        variants["base bin_counts"] = timed_cpu("base bin_counts", theirs)
    print(f"bin_counts (window + total counts) vs the per-syllable loop reference (window counts only, "
          f"{n_ref:,} syllables)")
    seconds = run_rounds(variants, args.rounds, baseline="reference")
    if args.base:  # the two bin_counts, ran in the same rounds: the other checkout's time / this one's
        lines = summary({name: s for name, s in seconds.items() if name != "reference"}, baseline="base bin_counts")
        print("\n".join(line for line in lines.splitlines() if line.startswith("base bin_counts/")))
    print("CPU s (user + system) per round: " + "; ".join(f"{n} {', '.join(f'{c:.2f}' for c in v)}" for n, v in cpu.items()))
    if args.base:
        r = ratios(cpu["base bin_counts"], cpu["bin_counts"])
        print(f"CPU base bin_counts/bin_counts: median {statistics.median(r):.2f} (range {min(r):.2f}-{max(r):.2f})")
    same = np.array_equal(out["reference"], out["ours"][:n_ref])
    if args.base:
        print(f"base: identical counts: {np.array_equal(out['base'], out['ours'])}")
    if args.workers > 1:
        same &= np.array_equal(out["threads"], out["ours"])
        print(f"workers={args.workers}: identical counts: {np.array_equal(out['threads'], out['ours'])}")
    print(f"identical counts: {same}")
    out.clear()

    tracemalloc.start()
    bin_counts(units, syllables, params, clock, session="bench", progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak memory allocated by bin_counts: {peak / 2**20:.0f} MiB (inputs: {units.spike_times_s.nbytes / 2**20:.0f} MiB spikes)")
    if not same:
        raise SystemExit("reference and bin_counts disagree")


if __name__ == "__main__":
    main()
