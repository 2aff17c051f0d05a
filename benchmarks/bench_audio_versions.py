"""The audio stage of another checkout (e.g. an older commit) against this one, on one recording, in
rounds side by side (benchmarks/rounds.py: machine, load, ratio per round), and whether the results
are the same: the syllables (onset and offset times), syllables.csv byte for byte, syllables.nc's
Dataset identical, and else the largest difference of the spectrograms and of each feature.

    git worktree add /tmp/base 40e7d07
    .venv/bin/python benchmarks/bench_audio_versions.py REC.wav --base /tmp/base --workers 1 2

Each run is a fresh interpreter with PYTHONPATH on its checkout, started in a scratch folder (``python
-c`` puts the working directory first on sys.path: started in this checkout, every variant ran its code); "in-process" times
``write_syllables`` and the CSV write, as bench_audio.py; CPU is that process's CPU time (all threads).
REC.wav: e.g. the 10-min recording of bench_audio.py (``write_recording``).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CODE = """
import json, sys, time
from mmneuro.audio import write_syllables
wav, out, workers = sys.argv[1:4]
t1, c1 = time.perf_counter(), time.process_time()
write_syllables(wav, "bench", out + ".nc", {"workers": int(workers)} if int(workers) else {}).table.to_csv(out + ".csv", index=False)
print(json.dumps({"s": time.perf_counter() - t1, "cpu_s": time.process_time() - c1}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav")
    parser.add_argument("--base", required=True, help="checkout to compare against (run without `workers`)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="this checkout's variants")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from rounds import machine, run_rounds

    here = str(Path(__file__).resolve().parents[1])
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_audio_versions_") as tmp:
        def variant(root: str, workers: int, name: str):
            def run() -> float:
                proc = subprocess.run([sys.executable, "-c", CODE, args.wav, f"{tmp}/{name}", str(workers)],
                                      env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, check=True,
                                      cwd=tmp)  # `python -c` puts the working directory first on sys.path
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                cpu.setdefault(name, []).append(out["cpu_s"])
                return out["s"]
            return run

        print(machine())
        variants = {"base": variant(args.base, 0, "base")}
        variants |= {f"workers={w}": variant(here, w, f"workers={w}") for w in args.workers}
        run_rounds(variants, args.rounds, baseline="base", label="in-process: ")
        print("CPU s (median): " + ", ".join(f"{n} {statistics.median(c):.3f}" for n, c in cpu.items()))
        import numpy as np
        import xarray as xr

        from mmneuro.audio.features import FEATURES
        base = xr.load_dataset(f"{tmp}/base.nc")
        for w in args.workers:
            new = xr.load_dataset(f"{tmp}/workers={w}.nc")
            same = len(base.syllable) == len(new.syllable) and all(
                np.array_equal(base[c].values, new[c].values) for c in ("onset_s", "offset_s"))
            print(f"workers={w}: same syllables (onset_s, offset_s) {same}, same CSV "
                  f"{filecmp.cmp(f'{tmp}/base.csv', f'{tmp}/workers={w}.csv', shallow=False)}, "
                  f"identical Dataset {base.drop_attrs().identical(new.drop_attrs())}")
            if same:
                diff = {name: float(np.abs(base[name].values - new[name].values).max(initial=0.0))
                        for name in ("spectrogram", *FEATURES)}
                print(f"  largest |difference|: " + ", ".join(f"{k} {v:.3g}" for k, v in diff.items()))

if __name__ == "__main__":
    main()
