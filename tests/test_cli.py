"""The `mmneuro` command: one module per stage in mmneuro/cli/, cheap --help, `--set` for every stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mmneuro.cli import COMMANDS, main
from mmneuro.io import read_netcdf, write_netcdf

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_lives_in_the_cli_package():
    assert all(module == f"mmneuro.cli.{name}" for name, (module, _) in COMMANDS.items())
    assert not list((ROOT / "mmneuro").glob("*_command.py")) and not list((ROOT / "mmneuro").glob("*/command.py"))


def test_help_imports_no_numerical_library():
    code = "import sys; from mmneuro.cli import build_parser; build_parser(); print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT)}).stdout
    assert not {"numpy", "torch", "xarray", "pandas"} & set(eval(out))


@pytest.mark.parametrize("name", [n for n in COMMANDS if n != "report"])  # report has no parameters
def test_every_stage_takes_set(name):
    parser = __import__("mmneuro.cli", fromlist=["build_parser"]).build_parser()
    required = {"synth": ["out"], "audio": ["a.wav", "--session", "s", "--out", "o.nc"],
                "neural": ["p", "--format", "phy", "--syllables", "s.nc", "--out", "o.nc"],
                "dataset": ["--session", "a", "s.nc", "-", "--out", "o.nc"], "train": ["d.nc", "--out", "o"],
                "analyse": ["m", "d.nc", "--out", "o"], "score": ["m", "d.nc", "a", "--truth", "s", "--out", "o"],
                "oracle": ["d.nc", "--truth", "s", "--out", "o"],
                "apply": ["m", "--out", "o"], "consistency": ["d.nc", "m0", "m1", "--out", "o"],
                "nwb": ["d.nc", "--counts", "c.nc", "--units", "u", "--format", "phy", "--out", "o.nwb"]}[name]
    args = parser.parse_args([name, *required, "--set", "a=1", "b=[x]", "--set", "c=2"])
    assert args.set == ["a=1", "b=[x]", "c=2"]


@pytest.fixture
def inputs(tmp_path):
    onset = np.array([1.0, 2.0, 3.0])
    pd.DataFrame({"unit": [1, 1, 1, 2], "time_s": np.r_[onset + 0.005, 1.0], "label": ["good"] * 3 + ["mua"]}
                 ).to_csv(tmp_path / "spikes.csv", index=False)
    syllables = xr.Dataset({"spectrogram": (("syllable", "freq", "time"), np.zeros((3, 2, 2), np.float32))},
                           coords={"syllable": [f"s1-{i:05d}" for i in range(3)], "session": ("syllable", ["s1"] * 3),
                                   "onset_s": ("syllable", onset), "offset_s": ("syllable", onset + 0.05),
                                   "freq_hz": ("freq", [40e3, 60e3])},
                           attrs={"session": "s1", "params": "{}"})
    write_netcdf(syllables, tmp_path / "syllables.nc")
    return tmp_path


def test_neural_set_is_the_same_as_its_shortcut_options(inputs):
    base = ["neural", str(inputs / "spikes.csv"), "--format", "table", "--syllables", str(inputs / "syllables.nc")]
    assert main([*base, "--out", str(inputs / "a.nc"), "--labels", "good,mua", "--latency-s", "0.03",
                 "--warp-bins", "2"]) == 0
    assert main([*base, "--out", str(inputs / "b.nc"), "--set", 'labels=["good", "mua"]', "latency_s=0.03",
                 "--set", "warp_bins=2"]) == 0
    a, b = read_netcdf(inputs / "a.nc"), read_netcdf(inputs / "b.nc")
    xr.testing.assert_identical(a, b)
    assert a.sizes["unit"] == 2 and a.sizes["warp_bin"] == 2


def test_dataset_set_is_the_same_as_its_shortcut_options(inputs):
    base = ["dataset", "--session", "s1", str(inputs / "syllables.nc"), "-"]
    assert main([*base, "--out", str(inputs / "a.nc"), "--val-fraction", "0.34", "--seed", "3"]) == 0
    assert main([*base, "--out", str(inputs / "b.nc"), "--set", "val_fraction=0.34", "seed=3"]) == 0
    xr.testing.assert_identical(read_netcdf(inputs / "a.nc"), read_netcdf(inputs / "b.nc"))
    assert (read_netcdf(inputs / "a.nc")["split"].values == "val").sum() == 1


@pytest.mark.parametrize("stage, setting, message", [
    ("neural", "pre_s=abc", "--set: pre_s: 'abc' is not of type float"),
    ("neural", "warp_bins=1.5", "--set: warp_bins: 1.5 is not of type int"),
    ("neural", "warp_bins=.inf", "--set: warp_bins: inf is not of type int"),
    ("neural", "bins=3", "--set: unknown key 'bins'; allowed: labels, pre_s"),
    ("neural", "pre_s", "--set: expected key=value, got 'pre_s'"),
    ("neural", "bin_s=0.03", "bin_s: window pre_s + post_s = 0.25 s is not a whole number"),
    ("dataset", "seed=[1", "--set: cannot read the value '[1'"),
    ("dataset", "val_fraction=2", "val_fraction must lie in [0, 1) (got 2.0)"),
])
def test_a_bad_setting_is_one_clear_error_and_no_output(inputs, capsys, stage, setting, message):
    out = inputs / "out.nc"
    argv = {"neural": ["neural", str(inputs / "spikes.csv"), "--format", "table", "--syllables",
                       str(inputs / "syllables.nc")],
            "dataset": ["dataset", "--session", "s1", str(inputs / "syllables.nc"), "-"]}[stage]
    assert main([*argv, "--out", str(out), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_synth_set_changes_the_planted_config(tmp_path):
    from mmneuro.synth import SynthConfig, load_ground_truth

    assert main(["synth", str(tmp_path / "s"), "--sessions", "1", "--duration-s", "5", "--set", "n_untuned=3"]) == 0
    config = SynthConfig.from_dict(load_ground_truth(tmp_path / "s" / "demo01")["config"])
    assert config == SynthConfig.from_dict({**SynthConfig().to_dict(), "n_untuned": 3})


def test_the_cheap_key_lists_of_the_parsers_follow_the_declarations():
    """The parsers list their --set keys without importing numpy; the lists must match the code."""
    import dataclasses

    from mmneuro.apply import ApplySettings
    from mmneuro.cli import apply, dataset, neural
    from mmneuro.dataset import DEFAULTS
    from mmneuro.neural.stage import PARAM_KEYS

    assert neural.KEYS == PARAM_KEYS and dataset.KEYS == tuple(DEFAULTS)
    assert set(apply.KEYS) == {f.name for f in dataclasses.fields(ApplySettings)}


def test_apply_refuses_a_neural_only_session_without_syllables(tmp_path, capsys):
    (tmp_path / "phy").mkdir()
    table = tmp_path / "new.tsv"
    table.write_text("session\tneural\tneural_format\nephys\tphy\tphy\n")
    assert main(["apply", str(tmp_path / "model"), "--sessions", str(table), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "ephys: a neural-only session needs a syllable table" in err and len(err.strip().splitlines()) == 1
    assert main(["apply", str(tmp_path / "model"), "--sessions", str(table), "--syllables", "other=s.csv",
                 "--out", str(tmp_path / "o")]) == 2
    assert "syllables given for session(s) not among the sessions: ['other']" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
