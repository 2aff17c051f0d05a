"""What every benchmark here prints, in one place: the machine, the date and the load; timings in
rounds (each variant once per round, in turn, so that load from other users of a shared machine hits
all of them alike); min / median / max per variant and, per round, its ratio to the baseline.
README and docs quote the median ratio and its range, with the machine line.

    from rounds import machine, run_rounds, timed
    print(machine())
    seconds = run_rounds({"old": timed(old), "new": timed(new)}, rounds=3, baseline="old")
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from typing import Callable

MIN_ROUNDS = 3


def load() -> str:
    """The 1/5/15-minute load averages (runnable processes; above the core count, timings stretch)."""
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def machine() -> str:
    """One line: date (UTC), CPU model, usable cores, load."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"machine: {now:%Y-%m-%d %H:%M} UTC, {cpu}, {cores} cores, {load()}"


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """``fn`` as a variant of :func:`run_rounds`: its wall time in seconds."""
    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def run_rounds(variants: dict[str, Callable[[], float]], rounds: int = MIN_ROUNDS, *, baseline: str | None = None,
               label: str = "") -> dict[str, list[float]]:
    """Run every variant (a callable returning the seconds it measured, e.g. :func:`timed`) once per
    round, in turn; print each round with the load and the ratio baseline / variant (> 1: faster than
    the baseline), then :func:`summary`. Returns {variant: seconds per round}."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"at least {MIN_ROUNDS} rounds (got {rounds}): one round shows no spread")
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds):
        before = load()
        for name, fn in variants.items():
            seconds[name].append(fn())
        parts = [f"{name} {s[-1]:.3f} s" for name, s in seconds.items()]
        if baseline:
            parts += [f"{baseline}/{name} {seconds[baseline][-1] / s[-1]:.2f}"
                      for name, s in seconds.items() if name != baseline]
        print(f"{label}round {r + 1}/{rounds} ({before}): " + ", ".join(parts), flush=True)
    print(summary(seconds, baseline, label), flush=True)
    return seconds


def summary(seconds: dict[str, list[float]], baseline: str | None = None, label: str = "") -> str:
    """min / median / max seconds per variant; with ``baseline``, the per-round ratios baseline /
    variant and their median and range."""
    lines = [f"{label}{name}: min {min(s):.3f} s, median {statistics.median(s):.3f} s, max {max(s):.3f} s "
             f"({len(s)} rounds)" for name, s in seconds.items()]
    if baseline:
        for name, s in seconds.items():
            if name != baseline:
                r = ratios(seconds[baseline], s)
                lines.append(f"{label}{baseline}/{name}: median {statistics.median(r):.2f} (range "
                             f"{min(r):.2f}-{max(r):.2f}; per round {', '.join(f'{x:.2f}' for x in r)})")
    return "\n".join(lines)


def ratios(base: list[float], other: list[float]) -> list[float]:
    """Per-round ratios base / other (the rounds ran side by side)."""
    return [b / o for b, o in zip(base, other)]
