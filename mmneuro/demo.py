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
    print(f"demo finished in {time.perf_counter() - t0:.0f} s. Reports:\n"
          f"  {report.resolve()}  (Snakemake report: every figure and table, by stage)\n"
          f"  {(Path(config['results']) / 'analysis_report.html').resolve()}  (the analysis, one page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
