"""Reruns a user makes: a changed training parameter, an added session, shifted sync pulses.

Each change is run for real (not only planned) up to the trained model (analysis and report are
ordinary Snakemake outputs; the reruns broke at training): only the jobs that depend on the change
run, and each rerun succeeds without deleting anything by hand (a stale checkpoint.pt once broke
all three).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmneuro.synth import generate_session
from workflow_helpers import TINY_CONFIG, make_project, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow
TARGET = "results/models/mvae/weights.pt"
DOWNSTREAM_OF_DATASET = {"dataset": 1, "train": 1}


def rerun(folder, expected_jobs):
    assert planned_jobs(folder, TARGET) == expected_jobs
    snakemake(folder, TARGET, "--cores", "2")
    assert planned_jobs(folder, TARGET) == {}
    assert not list((folder / "results").rglob("*.tmp"))


def test_reruns_after_changes_run_only_affected_jobs_and_succeed(tmp_path):
    config = {**TINY_CONFIG, "models": ["mvae"], "train": {"epochs": 1, "min_steps": 0, "batch_size": 32}}
    make_project(tmp_path)
    write_config(tmp_path, config)
    snakemake(tmp_path, TARGET, "--cores", "2")
    model = tmp_path / "results" / "models" / "mvae"

    write_config(tmp_path, {**config, "train": {"epochs": 2, "min_steps": 0, "batch_size": 32}})
    rerun(tmp_path, {"train": 1})
    assert json.loads((model / "config.json").read_text())["train"]["epochs"] == 2
    assert len((model / "metrics.csv").read_text().splitlines()) == 1 + 2

    sessions = tmp_path / "data" / "sessions.tsv"
    generate_session(tmp_path / "data", "demo03", seed=3, duration_s=20.0)
    row = sessions.read_text().splitlines()[-1].replace("demo02", "demo03")
    sessions.write_text(sessions.read_text() + row + "\n")
    rerun(tmp_path, {"audio": 1, "neural": 1, **DOWNSTREAM_OF_DATASET})
    assert json.loads((model / "config.json").read_text())["train"]["n_train"] > 0

    # same shapes, other counts: only the data digest tells the old checkpoint from the new data
    pulses = tmp_path / "data" / "demo01" / "sync_neural_s.npy"
    np.save(pulses, np.load(pulses) + 0.05)
    rerun(tmp_path, {"neural": 1, **DOWNSTREAM_OF_DATASET})
