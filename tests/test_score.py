"""The scoring stage (`mmneuro score`, synth.scoring.score_folder): an analysis folder + the planted
truth -> a scores folder holding exactly what scoring inside the analysis gives; bad input."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from mmneuro.errors import InputError
from cli_helpers import run_command
from test_analysis_pipeline import FAST, planted_world, train_small_model


@pytest.mark.slow
def test_score_stage_equals_scoring_inside_the_analysis(tmp_path):
    from mmneuro.analysis import analyse
    from mmneuro.analysis.result import _json_default
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import read_netcdf
    from mmneuro.models import load_model
    from mmneuro.synth.scoring import with_oracle_rows

    dataset, truth, _ = planted_world(tmp_path, n_per_session=120, units_per_cluster=2)
    model = train_small_model(tmp_path, dataset, steps=60, private_dims=1)  # factorised: probes of every part
    analysis, scores = tmp_path / "analysis" / "mvae", tmp_path / "scores" / "mvae"
    assert run_command("analyse", [str(model), str(dataset), "--out", str(analysis), "--quiet", "--set", *FAST]) == 0
    assert not (analysis / "scores.json").exists()  # the analysis knows nothing of the truth
    argv = [str(model), str(dataset), str(analysis), "--truth", *map(str, truth), "--out", str(scores), "--quiet"]
    assert run_command("score", argv) == 0
    assert sorted(p.name for p in scores.iterdir()) == ["crosspred_oracle.csv", "factors_planted_probes.csv",
                                                        "scores.json"]
    # the same numbers as scoring in memory, inside the analysis (to the last bit)
    ref = analyse(load_model(model), read_netcdf(dataset), settings=AnalysisSettings().replace(
        dict(a.split("=") for a in FAST)), truth=truth, progress=False)
    assert (scores / "scores.json").read_text() == json.dumps(ref.scores, indent=1, default=_json_default) + "\n"
    merged = with_oracle_rows(pd.read_csv(analysis / "crosspred.csv"), pd.read_csv(scores / "crosspred_oracle.csv"))
    assert merged.to_csv(index=False) == ref.crosspred.to_csv(index=False)
    assert (scores / "factors_planted_probes.csv").read_text() == ref.factors["planted_probes"].to_csv(index=False)
    assert set(pd.read_csv(scores / "crosspred_oracle.csv")["method"]) == {"oracle (planted rate)",
                                                                          "oracle (planted features)"}
    # the oracle fitted once per dataset (`mmneuro oracle`, the workflow's rule) gives the same files
    oracle, scores2 = tmp_path / "oracle", tmp_path / "scores2"
    assert run_command("oracle", [str(dataset), "--truth", *map(str, truth), "--out", str(oracle), "--quiet",
                                  "--set", *FAST]) == 0
    assert run_command("score", [*argv[:-3], "--oracle", str(oracle), "--out", str(scores2), "--quiet"]) == 0
    for name in ("crosspred_oracle.csv", "factors_planted_probes.csv", "scores.json"):
        assert (scores2 / name).read_bytes() == (scores / name).read_bytes(), name
    # a rerun replaces the folder and leaves nothing beside it
    (scores / "stale.txt").write_text("x")
    assert run_command("score", argv) == 0
    assert not (scores / "stale.txt").exists() and sorted(p.name for p in scores.parent.iterdir()) == ["mvae"]
    # an analysis folder that already holds the oracle rows is refused, not scored twice
    ref.write(tmp_path / "with_truth")
    with pytest.raises(InputError, match="already holds oracle rows"):
        run_command("score", [*argv[:2], str(tmp_path / "with_truth"), *argv[3:]])


def test_with_oracle_rows_puts_each_oracle_after_its_direction():
    from mmneuro.synth.scoring import with_oracle_rows

    table = pd.DataFrame({"direction": ["audio->neural", "audio->neural", "neural->audio"],
                          "method": ["model", "ridge", "mean"]})
    oracle = pd.DataFrame({"direction": ["audio->neural", "neural->audio"], "method": ["o1", "o2"]})
    assert with_oracle_rows(table, oracle)["method"].tolist() == ["model", "ridge", "o1", "mean", "o2"]


def test_analysis_settings_are_read_back_from_summary_json(tmp_path):
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.synth.scoring import analysis_settings

    settings = AnalysisSettings().replace({"ridge_alphas": "1,10", "match_tolerance_s": "0.02", "seed": "3"})
    (tmp_path / "summary.json").write_text(json.dumps({"settings": settings.to_dict()}))
    assert analysis_settings(tmp_path) == settings
    (tmp_path / "summary.json").write_text(json.dumps({"settings": {"no_such_key": 1}}))
    with pytest.raises(InputError, match="summary.json: no readable analysis settings"):
        analysis_settings(tmp_path)


def test_bad_input_is_one_clear_error(tmp_path):
    from mmneuro.synth.scoring import score_folder

    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "ground_truth.json").write_text(json.dumps({"session": "s1"}))
    out = tmp_path / "scores"
    with pytest.raises(InputError, match="not_analysed/summary.json: file not found"):
        score_folder(tmp_path / "m", tmp_path / "d.nc", tmp_path / "not_analysed", [tmp_path / "s1"], out)
    with pytest.raises(InputError, match="ground_truth.json: ground truth file not found"):
        score_folder(tmp_path / "m", tmp_path / "d.nc", tmp_path, [tmp_path / "missing"], out)
    with pytest.raises(InputError, match="no session folder"):
        score_folder(tmp_path / "m", tmp_path / "d.nc", tmp_path, [], out)
    assert not out.exists()
    # the command: exit 2 and one line naming the file
    done = subprocess.run([sys.executable, "-m", "mmneuro", "score", "m", "d.nc", str(tmp_path / "not_analysed"),
                           "--truth", str(tmp_path / "s1"), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("mmneuro score: error: ") and "summary.json: file not found" in done.stderr
    # the analysis takes no truth any more: scoring is its own stage
    done = subprocess.run([sys.executable, "-m", "mmneuro", "analyse", "m", "d.nc", "--out", str(out),
                           "--truth", str(tmp_path / "s1")], capture_output=True, text=True)
    assert done.returncode == 2 and "unrecognized arguments: --truth" in done.stderr


def test_an_oracle_of_other_settings_or_syllables_is_refused(tmp_path):
    import numpy as np
    import xarray as xr

    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import write_netcdf
    from mmneuro.synth.scoring import ORACLE_FILE, read_oracle

    settings = AnalysisSettings()
    part = xr.Dataset(coords={"syllable": ["s-0", "s-1"]})
    images = np.arange(8.0).reshape(2, 2, 2)
    oracle = xr.Dataset({"images": (("syllable", "freq", "time"), images)}, coords={"syllable": ["s-0", "s-1"]},
                        attrs={"split": settings.split, "seed": settings.seed,
                               "match_tolerance_s": settings.match_tolerance_s})
    write_netcdf(oracle, tmp_path / ORACLE_FILE)
    assert np.array_equal(read_oracle(tmp_path, part, settings), images)
    with pytest.raises(InputError, match=f"{ORACLE_FILE}: fitted with other settings: seed 0 .analysis: 3."):
        read_oracle(tmp_path, part, settings.replace({"seed": "3"}))
    # by syllable label: another order or one session's subset (own-unit scoring) gets its own rows
    assert np.array_equal(read_oracle(tmp_path, part.isel(syllable=[1, 0]), settings), images[[1, 0]])
    assert np.array_equal(read_oracle(tmp_path, part.isel(syllable=[1]), settings), images[[1]])
    with pytest.raises(InputError, match="fitted on other syllables"):
        read_oracle(tmp_path, xr.Dataset(coords={"syllable": ["s-0", "s-2"]}), settings)
    with pytest.raises(InputError, match="file not found"):
        read_oracle(tmp_path / "missing", part, settings)
