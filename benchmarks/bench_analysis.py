"""Benchmark of `mmneuro analyse` as `make demo` runs it: one thread per analysis, alone and two side
by side (the demo's 2 cores), this checkout against another one in rounds (benchmarks/rounds.py:
machine and load, min / median / max, ratio per round); then checks that both wrote the same tables.
Times are CPU seconds (user + sys) of each analysis process, which a loaded shared machine stretches
far less than wall clock; the wall clock of every run is printed too.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_analysis.py --results results --base /tmp/base
        [--models mvae mvae_factorised --rounds 3]   # /tmp/base: git worktree add /tmp/base <commit>

``--results``: a demo results folder (dataset.nc, models/<model>/). Times are those of the whole
command (imports, reading, analysis, figures); "pair": the mean of the two analyses run at once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from rounds import machine, run_rounds

ROOT = Path(__file__).resolve().parents[1]


def analyse(checkout: Path, results: Path, model: str, out: Path) -> tuple[float, float]:
    """CPU seconds (user + sys) and wall seconds of one `mmneuro analyse` of ``checkout``'s code, one thread."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mmneuro", "analyse", str(results / "models" / model),
                             str(results / "dataset.nc"), "--out", str(out), "--set", "seed=0", "--quiet"], env=env,
                            cwd=checkout)  # `python -m` puts the working directory first on sys.path
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"mmneuro analyse {model} failed ({checkout})")
    return usage.ru_utime + usage.ru_stime, wall


def variants(checkouts: dict[str, Path], results: Path, models: list[str], work: Path, walls: dict) -> dict:
    """{variant: callable returning CPU seconds}; each run's wall seconds are appended to ``walls``."""
    def alone(name, checkout):
        def run():
            cpu, wall = analyse(checkout, results, models[0], work / name / "alone" / models[0])
            walls.setdefault(f"{name} alone", []).append(wall)
            return cpu
        return run

    def pair(name, checkout):
        def run():
            with ThreadPoolExecutor(len(models)) as pool:
                runs = list(pool.map(lambda m: analyse(checkout, results, m, work / name / "pair" / m), models))
            walls.setdefault(f"{name} pair", []).append(max(wall for _, wall in runs))
            return float(np.mean([cpu for cpu, _ in runs]))
        return run

    out = {f"{name} alone": alone(name, c) for name, c in checkouts.items()}
    return out | {f"{name} pair": pair(name, c) for name, c in checkouts.items()}


def differences(a: Path, b: Path) -> list[str]:
    """What differs between two analysis folders: each CSV's largest relative difference of its numeric
    columns (0 when equal; other columns must match), and summary.json without its runtime."""
    lines = []
    for csv in sorted(a.glob("*.csv")):
        x, y = pd.read_csv(csv), pd.read_csv(b / csv.name)
        num = x.select_dtypes("number").columns
        if not x.drop(columns=num).equals(y.drop(columns=num)):
            lines.append(f"{csv.name}: non-numeric columns differ")
        diff = (x[num] - y[num]).abs().to_numpy() / np.maximum(np.abs(x[num].to_numpy()), 1e-12)
        same_nan = (x[num].isna() == y[num].isna()).all().all()
        worst = float(np.nanmax(diff)) if diff.size and np.isfinite(diff).any() else 0.0
        lines.append(f"{csv.name}: max relative difference {worst:.1e}" + ("" if same_nan else ", NaN differ"))
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    sa.pop("runtime_s"), sb.pop("runtime_s")
    lines.append("summary.json: " + ("equal" if sa == sb else "differs") + " (runtime_s left out)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--models", nargs="+", default=["mvae", "mvae_factorised"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkouts = {"base": args.base.resolve(), "this": ROOT}
        walls: dict[str, list[float]] = {}
        print("CPU seconds per analysis:")
        seconds = run_rounds(variants(checkouts, args.results.resolve(), args.models, work, walls), args.rounds)
        for kind in ("alone", "pair"):
            r = [b / t for b, t in zip(seconds[f"base {kind}"], seconds[f"this {kind}"])]
            print(f"CPU base/this {kind}: per round {', '.join(f'{x:.2f}' for x in r)}; median {np.median(r):.2f}")
        print("wall seconds (pair: the slower of the two):",
              "; ".join(f"{k} {', '.join(f'{w:.1f}' for w in v)}" for k, v in walls.items()))
        for model in args.models:
            print(f"{model}:", "; ".join(differences(work / "base" / "pair" / model, work / "this" / "pair" / model)))


if __name__ == "__main__":
    main()
