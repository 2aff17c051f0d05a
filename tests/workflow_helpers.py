"""Shared set-up for the workflow tests: a tiny demo project run by Snakemake in a temp folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Small enough for CI: 2 sessions × 20 s, 32×32 spectrograms, 2 epochs (no step floor), cheap analysis settings.
TINY_CONFIG = {
    "sessions": "data/sessions.tsv",
    "results": "results",
    "audio": {"set": {"n_freq": 32, "n_time": 32}},
    "train": {"epochs": 2, "min_steps": 0, "batch_size": 32},
    "model_overrides": {"mmvae": {"K": 2}},
    "analysis": {"n_permutations": 20, "synergy_k": 5, "cv_folds": 2, "synergy_max_syllables": 40},
}


def make_project(folder: Path, n_sessions: int = 2, duration_s: float = 20.0) -> Path:
    """Demo data + a config in ``folder``; returns the config path."""
    from mmneuro.synth import generate_demo

    generate_demo(folder / "data", n_sessions=n_sessions, duration_s=duration_s, seed=0)
    return write_config(folder, TINY_CONFIG)


def make_own_units_project(folder: Path, renumber: int = 100) -> Path:
    """The tiny demo project with every session sorted on its own (sessions table ``units: own``,
    docs/multisession.md): the second session's phy clusters renumbered by ``renumber`` so that its
    unit ids really differ (its ground_truth.json too); 40 % test syllables so that each session's own
    analysis has 10 of them. Two models, the MVAE with a second seed. Returns the config path."""
    import numpy as np
    import pandas as pd

    make_project(folder)
    table = pd.read_csv(folder / "data" / "sessions.tsv", sep="\t", dtype=str, keep_default_na=False)
    table["units"] = "own"
    table.to_csv(folder / "data" / "sessions.tsv", sep="\t", index=False)
    phy = folder / "data" / table["neural"].iloc[1]
    np.save(phy / "spike_clusters.npy", np.load(phy / "spike_clusters.npy") + renumber)
    groups = pd.read_csv(phy / "cluster_group.tsv", sep="\t")
    groups.assign(cluster_id=groups["cluster_id"] + renumber).to_csv(phy / "cluster_group.tsv", sep="\t", index=False)
    truth_file = folder / "data" / table["session"].iloc[1] / "ground_truth.json"  # the truth names the new ids
    truth = json.loads(truth_file.read_text())
    for unit in truth["units"]:
        unit["unit"] += renumber
    if truth.get("neural_only_factor"):
        truth["neural_only_factor"]["units"] = [u + renumber for u in truth["neural_only_factor"]["units"]]
    truth_file.write_text(json.dumps(truth))
    return write_config(folder, {**TINY_CONFIG, "models": ["mvae", "mopoe"],
                                 "model_overrides": {**TINY_CONFIG["model_overrides"], "mvae": {"seeds": [1]}},
                                 "dataset": {"val_fraction": 0.15, "test_fraction": 0.4}})


def write_config(folder: Path, config: dict) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(folder: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the project's workflow in ``folder`` (targets first: --configfile takes several values)."""
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(ROOT / "Snakefile"),
           "--configfile", str(folder / "config.yaml")]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def planned_jobs(folder: Path, *targets: str) -> dict[str, int]:
    """Jobs per rule that a dry run (of ``targets``, default all) would execute ({} when there is nothing to do)."""
    out = snakemake(folder, *targets, "--dry-run", "--quiet", "rules", "--cores", "1")
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    counts = dict(re.findall(r"(?m)^(\w+)\s+(\d+)\s*$", text))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}
