"""The Snakemake workflow end to end on a tiny demo project, then what a rerun recomputes."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mmneuro.synth import generate_session
from workflow_helpers import ROOT, TINY_CONFIG, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow
MODELS = ("mvae", "mmvae", "mopoe")


@pytest.fixture(scope="module")
def project(local_project):
    return local_project


def test_workflow_runs_to_the_report(project):
    results = project / "results"
    for session in ("demo01", "demo02"):
        assert (results / session / "syllables.nc").is_file() and (results / session / "counts.nc").is_file()
    for model in MODELS:
        analysis = results / "analysis" / model
        assert (results / "models" / model / "weights.pt").is_file()
        for name in ("clusters.csv", "crosspred.csv", "synergy.csv", "latent_band.csv"):
            assert (analysis / name).stat().st_size > 0, name
        # models of binned counts: PSTH R² per unit for the model's two neural predictions, none for the baselines
        cross = pd.read_csv(analysis / "crosspred.csv")
        psth = cross.groupby("method")["psth_r2"].apply(lambda r: r.notna().any())
        assert psth[["model (audio->neural)", "model (neural->neural)"]].all() and not psth["mean_rate"]
        assert set(json.loads((analysis / "summary.json").read_text())["crosspred"]["psth_r2_mean_over_units"]) == {
            "model (audio->neural)", "model (neural->neural)"}
        # demo data: the scores against the planted truth sit in their own rule's folder, not the analysis'
        assert not (analysis / "scores.json").exists()
        for name in ("scores.json", "crosspred_oracle.csv", "factors_planted_probes.csv"):
            assert (results / "scores" / model / name).stat().st_size > 0, name
        assert len(list((analysis / "figures").glob("*.png"))) >= 5
        assert (results / "logs" / "train" / f"{model}.log").is_file()
        assert (results / "benchmarks" / "train" / f"{model}.tsv").is_file()
    html = (results / "analysis_report.html").read_text()
    for section in ("Synergy", "Cross-prediction", "data:image/png;base64", *MODELS):
        assert section.lower() in html.lower(), section
    # no temporary or incomplete outputs left behind
    assert not list(results.rglob("*.tmp"))


def test_the_python_api_gives_the_workflows_results(project, monkeypatch):
    """The README's three lines on the workflow's sessions and config, in memory: the same dataset, and the
    MoPoE's clusters, latent bands and cross-prediction that the workflow wrote."""
    import io

    import pandas as pd
    import xarray as xr

    import mmneuro as mm
    from mmneuro.analysis import AnalysisSettings
    from mmneuro.io import read_netcdf

    import torch
    from threadpoolctl import threadpool_limits

    results = project / "results"
    monkeypatch.chdir(project)  # the sessions table's paths are relative to where the workflow runs
    ds = mm.preprocess(mm.load_sessions(TINY_CONFIG["sessions"]), audio=TINY_CONFIG["audio"], progress=False)
    xr.testing.assert_equal(ds, read_netcdf(results / "dataset.nc"))
    # one thread, as the train and analyse rules run: more threads sum in another order (values move
    # in the 6th digit)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            model = mm.MoPoE(**TINY_CONFIG["train"]).fit(ds)
            result = mm.analyse(model, ds, settings=AnalysisSettings(**TINY_CONFIG["analysis"]), progress=False)
    finally:
        torch.set_num_threads(threads)
    for table in ("clusters", "latent_band", "crosspred"):
        written = pd.read_csv(results / "analysis" / "mopoe" / f"{table}.csv")
        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(getattr(result, table).to_csv(index=False))), written)


def test_snakemake_report_has_figures_by_stage(project):
    snakemake(project, "--report", "report.zip")
    import zipfile

    names = zipfile.ZipFile(project / "report.zip").namelist()
    assert any(n.endswith("latent_unit_correlation.png") for n in names)
    assert any(n.endswith("analysis_report.html") for n in names)
    assert any(n.endswith("syllables.csv") for n in names)


def test_unchanged_rerun_does_nothing(project):
    assert planned_jobs(project) == {}


def test_new_session_recomputes_only_what_depends_on_it(project):
    sessions = project / "data" / "sessions.tsv"
    original = sessions.read_text()
    try:
        generate_session(project / "data", "demo03", seed=3, duration_s=20.0)
        row = original.splitlines()[-1].replace("demo02", "demo03")
        sessions.write_text(original.rstrip("\n") + "\n" + row + "\n")
        jobs = planned_jobs(project)
        assert jobs.get("audio") == 1 and jobs.get("neural") == 1  # only demo03's preprocessing
        assert jobs.get("dataset") == 1
        assert jobs.get("train") == 3 and jobs.get("analyse") == 3 and jobs.get("score") == 3
        assert jobs.get("oracle") == 1  # the model-independent part of scoring: once per dataset
        assert jobs.get("report") == 1
    finally:
        sessions.write_text(original)
        shutil.rmtree(project / "data" / "demo03", ignore_errors=True)
    assert planned_jobs(project) == {}


def test_changed_truth_reruns_only_the_scores_and_the_report(project):
    """Scoring is downstream of the analysis: a changed planted truth neither retrains nor re-analyses
    (it refits the oracle, once, and rescores every model)."""
    truth = project / "data" / "demo01" / "ground_truth.json"
    original = truth.read_text()
    try:  # a changed content (Snakemake compares small inputs by checksum, not by time)
        truth.write_text(original + "\n")
        assert planned_jobs(project) == {"oracle": 1, "score": 3, "report": 1, "all": 1}
    finally:
        truth.write_text(original)
    assert planned_jobs(project) == {}


def test_sessions_without_a_truth_get_no_score_rule(project, tmp_path):
    """Without ground_truth.json beside the audio (real data) the report needs no scores."""
    shutil.copytree(project / "data", tmp_path / "data")
    for truth in (tmp_path / "data").glob("*/ground_truth.json"):
        truth.unlink()
    write_config(tmp_path, TINY_CONFIG)
    jobs = planned_jobs(tmp_path)
    assert "score" not in jobs and "oracle" not in jobs and jobs.get("analyse") == 3 and jobs.get("report") == 1


def test_changed_parameter_reruns_that_stage_and_downstream(project):
    config = {**TINY_CONFIG, "neural": {"bin_s": 0.025}}
    write_config(project, config)
    try:
        jobs = planned_jobs(project)
        assert "audio" not in jobs  # upstream of the change: untouched
        assert jobs.get("neural") == 2 and jobs.get("dataset") == 1 and jobs.get("train") == 3
    finally:
        write_config(project, TINY_CONFIG)


def test_model_variant_trains_its_kind_with_its_overrides(project):
    """`mvae_factorised` in `models` is an mvae trained with model_overrides["mvae_factorised"]."""
    config = {**TINY_CONFIG, "models": ["mvae", "mvae_factorised"],
              "model_overrides": {"mvae_factorised": {"latent_dim": 4, "private_dims": 3}}}
    write_config(project, config)
    try:
        out = snakemake(project, "results/models/mvae_factorised/weights.pt", "--dry-run", "--printshellcmds",
                        "--cores", "1")
    finally:
        write_config(project, TINY_CONFIG)
    train = [line for line in out.stdout.splitlines() if "mmneuro train" in line]
    assert len(train) == 1, out.stdout[-2000:]
    assert "--model mvae " in train[0] and "results/models/mvae_factorised" in train[0]
    assert "private_dims=3" in train[0] and "latent_dim=4" in train[0]


def test_nwb_rule_exports_a_session(project):
    """The `nwb` rule (what `nwb_all` runs for every session): the dataset's counts and every model's
    latents in results/<session>/<session>.nwb. One session only, to keep the test short."""
    import numpy as np
    from pynwb import NWBHDF5IO

    from mmneuro.io import read_netcdf

    snakemake(project, "results/demo01/demo01.nwb", "--cores", "1")
    ds = read_netcdf(project / "results" / "dataset.nc")
    demo01 = ds.isel(syllable=np.flatnonzero(ds["session"].values == "demo01"))
    with NWBHDF5IO(str(project / "results" / "demo01" / "demo01.nwb"), "r", load_namespaces=True) as io:
        nwb = io.read()
        table = nwb.intervals["syllables"].to_dataframe()
        counts = nwb.processing["ecephys"]["syllable_aligned_counts"].data[:]
    assert sorted(table["syllable"]) == sorted(demo01["syllable"].values)
    order = np.argsort(demo01["onset_s"].values)
    np.testing.assert_array_equal(counts, demo01["counts"].transpose("unit", "syllable", "bin").values[:, order])
    assert {f"latent_mean_{m}" for m in MODELS} <= set(table.columns)


def test_seeds_train_only_the_extra_runs_then_consistency_and_the_report(project, tmp_path):
    """`seeds` for one model: its extra seeds train (not the main run), the consistency stage and the
    report follow; an added seed trains only that seed."""
    import json
    import re

    for name in ("data", "results", ".snakemake"):  # a copy: the other tests expect the project unchanged
        shutil.copytree(project / name, tmp_path / name, symlinks=True)
    overrides = TINY_CONFIG["model_overrides"]
    write_config(tmp_path, {**TINY_CONFIG, "model_overrides": {**overrides, "mvae": {"seeds": [0, 1]}}})
    run = snakemake(tmp_path, "--cores", "2")
    ran = {rule: int(n) for rule, n in re.findall(r"(?m)^(\w+)\s+(\d+)\s*$", run.stdout + run.stderr)}
    assert {k: v for k, v in ran.items() if k != "total"} == {"train_seed": 1, "consistency": 1, "report": 1, "all": 1}
    out = tmp_path / "results" / "consistency" / "mvae"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == ["seed0", "seed1"] and (out / "r2_seed0_vs_seed1.csv").is_file()
    assert json.loads((tmp_path / "results/models/mvae/seeds/1/config.json").read_text())["train"]["seed"] == 1
    assert "Consistency across seeds" in (tmp_path / "results" / "analysis_report.html").read_text()
    write_config(tmp_path, {**TINY_CONFIG, "model_overrides": {**overrides, "mvae": {"seeds": [0, 1, 2]}}})
    assert planned_jobs(tmp_path) == {"train_seed": 1, "consistency": 1, "report": 1, "all": 1}


def test_lint_passes(project):
    out = snakemake(project, "--lint")
    assert "Congratulations" in out.stdout + out.stderr


def test_rulegraph_in_readme_is_current(project):
    """The README shows the rule graph; regenerate docs/rulegraph.dot if the DAG changes."""
    out = snakemake(project, "--rulegraph")
    dot = (ROOT / "docs" / "rulegraph.dot").read_text()
    assert _edges(out.stdout) == _edges(dot)


def _edges(dot: str) -> set[tuple[str, str]]:
    import re

    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', dot))
    return {(labels[a], labels[b]) for a, b in re.findall(r"(\d+) -> (\d+)", dot)}
