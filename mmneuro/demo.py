"""`python -m mmneuro.demo`: the README's demo command (what `make demo` runs).

Generates the demo sessions if they are missing (settings in the config's ``demo`` section),
runs the Snakemake workflow end to end, builds the report and prints where it is.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from mmneuro.config import load_config
from mmneuro.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def ensure_demo_data(config: dict) -> Path:
    """Generate the demo sessions unless their sessions table already exists; return the table."""
    from mmneuro.synth import generate_demo

    demo = config["demo"]
    table = Path(demo["out"]) / "sessions.tsv"
    if table.is_file():
        print(f"demo data: {table} exists, not regenerated (delete {demo['out']} to regenerate)")
        return table
    t0 = time.perf_counter()
    table = generate_demo(demo["out"], n_sessions=demo["n_sessions"], duration_s=demo["duration_s"], seed=demo["seed"])
    print(f"demo data: {demo['n_sessions']} sessions × {demo['duration_s']:g} s written to {demo['out']} "
          f"in {time.perf_counter() - t0:.1f} s")
    return Path(table)


def run_workflow(configfile: Path, cores: int, report: Path) -> None:
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
            "--configfile", str(configfile), "--cores", str(cores)]
    subprocess.run(base + ["--rerun-incomplete", "--printshellcmds"], check=True)
    subprocess.run(base + ["--report", str(report)], check=True)


def score_lines(results: Path) -> list[str]:
    """One line per scored model: how well it found the planted truth (scores/<model>/scores.json,
    from the workflow's score rule)."""
    import json

    lines = []
    for path in sorted(Path(results).glob("scores/*/scores.json")):
        s = json.loads(path.read_text())
        errors = ", ".join(f"{r['error_khz']:+.1f}" for r in s["band_recovery"])
        c = s["clusters"]
        untuned = (f"untuned recall {c['untuned_recall']:.2f}, tuned flagged {c['false_flag_rate']:.2f}; "
                   if "untuned_recall" in c else "")
        line = (f"  {path.parent.name:<16} cluster ARI {c['ari']:.2f}; {untuned}band errors (kHz) {errors}; "
                f"audio->neural r / oracle {s.get('model_over_oracle_r') or float('nan'):.2f}")
        fact = s.get("factorisation", {})
        if fact.get("targets", {}).get("tuning_in_shared") is not None:
            r2 = fact["probes_r2"]
            line += (f"; R² amplitude audio-private {r2['log_amplitude']['audio_private']:.2f} vs shared "
                     f"{r2['log_amplitude']['shared']:.2f}, drift neural-private "
                     f"{r2['slow_drift']['neural_private']:.2f} vs shared {r2['slow_drift']['shared']:.2f}")
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmneuro.demo", description=__doc__)
    parser.add_argument("--config", default="config/config.yaml", help="workflow config (default: the demo's)")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        config = load_config(args.config)
        ensure_demo_data(config)
    except InputError as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2
    report = Path(config["results"]) / "report.html"
    try:
        run_workflow(Path(args.config), args.cores, report)
    except subprocess.CalledProcessError as err:
        print(f"demo: the workflow failed (exit {err.returncode}); see the log above and "
              f"{config['results']}/logs/", file=sys.stderr)
        return err.returncode
    scores = score_lines(Path(config["results"]))
    if scores:
        print("scores against the planted truth (details in the reports):", *scores, sep="\n")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s. Reports:\n"
          f"  {report.resolve()}  (Snakemake report: every figure and table, by stage)\n"
          f"  {(Path(config['results']) / 'analysis_report.html').resolve()}  (the analysis, one page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
