"""The workflow through Snakemake's SLURM executor on a real one-node Slurm cluster.

Needs the cluster from tests/slurm/start_cluster.sh (SLURM_CONF exported); `.ci/run` starts it.
Locally the tests skip without a cluster (deselect with -m "not slurm"); with
MMNEURO_REQUIRE_SLURM=1 (set by .ci/run) a missing cluster is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmneuro.io import read_netcdf
from workflow_helpers import ROOT, make_project, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# The one test node has 2 CPUs and no GPU: shrink the profile's per-rule requests to fit it.
FIT_TEST_NODE = ["--set-resources", "train:gpu=0", "train:cpus_per_task=1", "train:mem_mb=3000",
                 "analyse:cpus_per_task=1", "analyse:mem_mb=3000",
                 # poll often (the profile's defaults suit real clusters) and keep logs to inspect
                 "--seconds-between-status-checks", "2", "--slurm-init-seconds-before-status-checks", "1",
                 "--slurm-keep-successful-logs"]


def _cluster_up() -> bool:
    if not os.environ.get("SLURM_CONF") or not shutil.which("sbatch"):
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def cluster():
    if not _cluster_up():
        if os.environ.get("MMNEURO_REQUIRE_SLURM"):
            pytest.fail("no Slurm cluster answers (SLURM_CONF unset or sinfo fails); see tests/slurm/start_cluster.sh")
        pytest.skip("no Slurm cluster: source tests/slurm/start_cluster.sh to run these tests")
    return Path(os.environ["SLURM_CONF"]).parent


def run_on_slurm(folder: Path, *extra: str, check: bool = True):
    return snakemake(folder, "--workflow-profile", str(ROOT / "workflow" / "profiles" / "slurm"),
                     *FIT_TEST_NODE, *extra, check=check)


def completed_jobs(state: Path) -> list[str]:
    log = state / "jobcomp.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture(scope="module")
def slurm_and_local_runs(cluster, tmp_path_factory, local_project):
    on_slurm = tmp_path_factory.mktemp("slurm")
    make_project(on_slurm)
    before = len(completed_jobs(cluster))
    run_on_slurm(on_slurm)
    return on_slurm, local_project, completed_jobs(cluster)[before:]


def test_jobs_ran_through_slurm(slurm_and_local_runs):
    on_slurm, _, finished = slurm_and_local_runs
    # every rule except the local `all` target ran as a Slurm job, and each completed
    rules = {p.name for p in (on_slurm / ".snakemake" / "slurm_logs").iterdir()}
    assert {"rule_audio", "rule_neural", "rule_dataset", "rule_train", "rule_analyse", "rule_report"} <= rules
    assert len(finished) >= 2 + 2 + 1 + 3 + 3 + 1
    assert all("JobState=COMPLETED" in line for line in finished)


def test_outputs_equal_a_local_run(slurm_and_local_runs):
    on_slurm, local, _ = slurm_and_local_runs
    for rel in ("demo01/syllables.nc", "demo02/counts.nc", "dataset.nc"):
        a, b = read_netcdf(on_slurm / "results" / rel), read_netcdf(local / "results" / rel)
        a.attrs.pop("audio_path", None), b.attrs.pop("audio_path", None)
        assert a.equals(b), rel
    for model in ("mvae", "mmvae", "mopoe"):
        a = pd.read_csv(on_slurm / "results" / "models" / model / "metrics.csv")
        b = pd.read_csv(local / "results" / "models" / model / "metrics.csv")
        np.testing.assert_allclose(a.select_dtypes("number"), b.select_dtypes("number"), rtol=1e-3)
    assert (on_slurm / "results" / "analysis_report.html").is_file()


def test_a_job_killed_by_slurm_is_retried_and_leaves_no_partial_output(cluster, tmp_path):
    make_project(tmp_path)
    killed = []

    def cancel_first_neural_job():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            out = subprocess.run(["squeue", "-h", "-o", "%i %k %t"], capture_output=True, text=True).stdout
            for job_id, comment, state in (line.split() for line in out.splitlines() if line.strip()):
                if comment.startswith("rule_neural") and state == "R":
                    subprocess.run(["scancel", job_id], check=True)
                    killed.append(job_id)
                    return
            time.sleep(0.2)

    watcher = threading.Thread(target=cancel_first_neural_job)
    watcher.start()
    # stop after the preprocessing: the point is the kill and the retry
    result = run_on_slurm(tmp_path, "results/dataset.nc", check=False)
    watcher.join()
    assert killed, "no neural job was seen running to cancel"
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"Error in rule neural" in log or "failed" in log.lower()  # the kill was reported
    for session in ("demo01", "demo02"):
        counts = read_netcdf(tmp_path / "results" / session / "counts.nc")  # complete and readable
        assert counts.sizes["syllable"] > 0
    assert not list((tmp_path / "results").rglob("*.tmp"))
