"""Config validation: defaults, and one clear error naming the key and problem for each mistake."""

import pytest
import yaml

from mmneuro.config import load_config, load_sessions
from mmneuro.errors import InputError

HEADER = "session\taudio\tneural\tneural_format\tsync_audio\tsync_neural\tclock_offset_s\tclock_drift\n"


@pytest.fixture
def session_files(tmp_path):
    for name in ("a.wav", "sa.npy", "sn.npy"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "phy").mkdir()
    return tmp_path


def write_config(tmp_path, config: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_defaults_are_filled(tmp_path):
    config = load_config(write_config(tmp_path, {"sessions": "s.tsv", "neural": {"bin_s": 0.005}}))
    assert config["neural"]["bin_s"] == 0.005  # user's value kept
    assert config["neural"]["pre_s"] == 0.05  # default filled in
    assert config["models"] == ["mvae", "mmvae", "mopoe"]
    assert config["audio"]["preset"] == "mouse"


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"sessions": "s.tsv", "neural": {"bin_s": -0.01}}, "neural.bin_s: must be > 0"),
        ({"sessions": "s.tsv", "demo": {"duration_s": -5}}, "demo.duration_s: must be > 0 (got -5)"),
        ({"sessions": "s.tsv", "models": ["mvae", "vq"]}, "models.1: 'vq' does not match"),
        ({"sessions": "s.tsv", "models": ["mvae", "mvae-big"]}, "models.1: 'mvae-big' does not match"),
        ({"sessions": "s.tsv", "nueral": {}}, "'nueral' was unexpected"),
        ({}, "'sessions' is a required property"),
        ({"sessions": "s.tsv", "train": {"epochs": "ten"}}, "train.epochs: 'ten' is not of type integer"),
        ({"sessions": "s.tsv", "train": {"beta": -1}}, "train.beta: must be >= 0 (got -1)"),
        ({"sessions": "s.tsv", "train": {"epochs": 2.0}}, "train.epochs: 2.0 is not of type integer"),
        ({"sessions": "s.tsv", "train": {"epoch": 3}}, "train: 'epoch' was unexpected"),
        ({"sessions": "s.tsv", "model_overrides": {"mmvae": {"latent_dim": 2.5}}},
         "model_overrides.mmvae.latent_dim: 2.5 is not of type integer"),
        ({"sessions": "s.tsv", "model_overrides": {"mmvae": {"audio": {"likelihood": 3}}}},
         "model_overrides.mmvae.audio.likelihood: 3 is not of type string"),
        ({"sessions": "s.tsv", "audio": {"preset": "rat"}}, "audio: preset 'rat': unknown preset"),
        ({"sessions": "s.tsv", "audio": {"set": {"nperseg": 512}}}, "audio: parameter 'nperseg': unknown"),
    ],
)
def test_bad_config_names_key_and_problem(tmp_path, config, expected):
    with pytest.raises(InputError) as err:
        load_config(write_config(tmp_path, config))
    assert str(tmp_path / "config.yaml") in str(err.value)
    assert expected in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_sessions_resolve_relative_to_table(session_files):
    table = session_files / "sessions.tsv"
    table.write_text(HEADER + "s1\ta.wav\tphy\tphy\tsa.npy\tsn.npy\t\t\n" + "s2\ta.wav\t\t\t\t\t\t\n")
    s1, s2 = load_sessions(table)
    assert s1.audio == session_files / "a.wav" and s1.neural == session_files / "phy"
    assert s1.clock_offset_s is None and s1.sync_audio == session_files / "sa.npy"
    assert s2.neural is None and s2.neural_format is None  # audio-only session


@pytest.mark.parametrize(
    "row, expected",
    [
        ("s1\tmissing.wav\tphy\tphy\t\t\t0.1\t\n", "line 2 (session s1): audio: file not found"),
        ("s1\ta.wav\tphy\tkilosort9\t\t\t0.1\t\n", "neural_format: 'kilosort9' is not one of phy, nwb, table, spikeinterface"),
        ("s1\ta.wav\tphy\tphy\t\t\tabc\t\n", "clock_offset_s: 'abc' is not a number"),
        ("s1\ta.wav\tphy\tphy\t\t\t\t\n", "give clock_offset_s"),
        ("s1\ta.wav\tphy\tphy\tsa.npy\t\t\t\n", "sync_audio and sync_neural must be given together"),
        ("s 1\ta.wav\t\t\t\t\t\t\n", "is not a valid id"),
        ("..\ta.wav\t\t\t\t\t\t\n", "'..' is not a valid id"),
        (".\ta.wav\t\t\t\t\t\t\n", "'.' is not a valid id"),
    ],
)
def test_bad_sessions_table(session_files, row, expected):
    table = session_files / "sessions.tsv"
    table.write_text(HEADER + row)
    with pytest.raises(InputError) as err:
        load_sessions(table)
    assert str(table) in str(err.value) and expected in str(err.value)


def test_duplicate_sessions(session_files):
    table = session_files / "sessions.tsv"
    table.write_text(HEADER + "s1\ta.wav\t\t\t\t\t\t\n" * 2)
    with pytest.raises(InputError, match="duplicate session id"):
        load_sessions(table)


def test_example_sessions_table_and_demo_config_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sessions = load_sessions(root / "config/sessions.example.tsv", check_files=False)
    assert [s.neural_format for s in sessions] == ["phy", "nwb", None]
    assert sessions[1].sync_neural.name == "day2_ephys_ttl.npy"
    config = load_config(root / "config/config.yaml")
    assert config["sessions"] == "data/demo/sessions.tsv"


def test_demo_command_reports_a_bad_config_in_one_line(tmp_path, capsys):
    from mmneuro.demo import main

    path = write_config(tmp_path, {"sessions": "s.tsv", "demo": {"duration_s": -3}})
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"demo: error: {path}: demo.duration_s: must be > 0 (got -3)"
    assert not (tmp_path / "data").exists()


def test_demo_prints_each_models_scores_with_factor_placement(tmp_path):
    import json

    from mmneuro.demo import score_lines

    base = {"clusters": {"ari": 0.875}, "band_recovery": [{"error_khz": -1.25}, {"error_khz": 0.5}],
            "model_over_oracle_r": 0.8125}
    placed = {"factorisation": {"targets": {"tuning_in_shared": True},
                                "probes_r2": {"log_amplitude": {"audio_private": 0.36, "shared": 0.05},
                                              "slow_drift": {"neural_private": 0.5, "shared": 0.09}}}}
    for name, scores in (("mvae", base), ("mvae_factorised", base | placed)):
        (tmp_path / "scores" / name).mkdir(parents=True)
        (tmp_path / "scores" / name / "scores.json").write_text(json.dumps(scores))
    plain, factorised = score_lines(tmp_path)
    assert plain.split()[0] == "mvae" and "ARI 0.88" in plain and "-1.2, +0.5" in plain and "oracle 0.81" in plain
    assert "R²" not in plain
    assert "amplitude audio-private 0.36 vs shared 0.05, drift neural-private 0.50 vs shared 0.09" in factorised


def test_training_keys_are_typed_from_the_dataclasses():
    """The schema follows TrainConfig/ModelConfig: every field is a key, typed from its annotation,
    and a default changed there needs no change here (the schema holds no defaults)."""
    import dataclasses

    from mmneuro.config import train_schema
    from mmneuro.models.config import ExpertConfig, ModelConfig
    from mmneuro.train import TrainConfig

    props = train_schema()["properties"]
    fields = {f.name for cls in (TrainConfig, ModelConfig) for f in dataclasses.fields(cls)} - {"modalities"}
    assert fields <= set(props) and not any("default" in p for p in props.values())
    assert props["epochs"]["type"] == "integer" and props["lr"]["type"] == "number"
    assert props["dreg"]["type"] == "boolean" and props["kind"]["type"] == "string"
    assert {f.name for f in dataclasses.fields(ExpertConfig)} == set(props["audio"]["properties"])


@pytest.mark.parametrize("sid", ["..", ".", "a/b", ""])
def test_session_ids_that_escape_the_results_folder_are_refused(tmp_path, sid):
    """Session ids become folders (results/<session>/): the audio, neural and dataset tests check
    their --session; here the library entry points that take one."""
    from pathlib import Path

    from mmneuro.config import Session
    from mmneuro.audio.syllables import plan_syllables

    with pytest.raises(InputError, match="not a valid id"):
        Session(session=sid, audio=Path("a.wav"))
    with pytest.raises(InputError, match="not a valid id"):
        plan_syllables(tmp_path / "a.wav", sid)


def test_every_schema_default_is_the_codes_default():
    """The schema repeats the library's defaults for readers; they must not drift apart."""
    from mmneuro.config import code_defaults, schema_default_mismatches, static_schema

    assert schema_default_mismatches() == []
    assert code_defaults()["neural.latency_s"] == 0.02 and "apply.n_samples" in code_defaults()
    drifted = static_schema()
    drifted["properties"]["neural"]["properties"]["latency_s"]["default"] = 0.03
    drifted["properties"]["dataset"]["properties"]["new_key"] = {"type": "number", "default": 1}
    assert schema_default_mismatches(drifted) == ["neural.latency_s: schema 0.03, code 0.02",
                                                  "dataset.new_key: schema 1, not declared in the code"]


def test_a_changed_code_default_is_caught(monkeypatch):
    from mmneuro import dataset
    from mmneuro.config import schema_default_mismatches

    monkeypatch.setitem(dataset.DEFAULTS, "val_fraction", 0.2)
    assert schema_default_mismatches() == ["dataset.val_fraction: schema 0.15, code 0.2"]


def test_train_and_model_overrides_are_typed_in_the_schema():
    from mmneuro.config import schema, train_schema

    props = schema()["properties"]
    assert props["train"]["properties"] == train_schema(workflow=True)["properties"]
    assert props["model_overrides"]["additionalProperties"] == train_schema(workflow=True)
    assert "seeds" not in train_schema()["properties"]  # a workflow key, not one training run's


def test_seeds_are_a_workflow_training_key(tmp_path):
    """`seeds` (extra trainings for the consistency stage) is valid in `train` and `model_overrides`
    of the workflow config only: a list of distinct non-negative ints; `mmneuro train` refuses it."""
    from mmneuro.cli import main as cli_main
    from mmneuro.config import validate_config

    ok = validate_config({"sessions": "s.tsv", "train": {"seeds": [0, 1, 2]}, "model_overrides": {"mvae": {"seeds": []}}})
    assert ok["train"]["seeds"] == [0, 1, 2]
    for where, bad, problem in [("train", [1, -1], "train.seeds.1: must be >= 0"), ("train", [1, 1], "train.seeds"),
                                ("train", 2, "train.seeds: 2 is not of type array"),
                                ("mvae", ["a"], "model_overrides.mvae.seeds.0: 'a' is not of type integer")]:
        config = {"sessions": "s.tsv", **({"train": {"seeds": bad}} if where == "train"
                                          else {"model_overrides": {where: {"seeds": bad}}})}
        with pytest.raises(InputError, match=problem.replace(".", r"\.")):
            validate_config(config, source="c.yaml")
    assert cli_main(["train", str(tmp_path / "d.nc"), "--out", str(tmp_path / "m"), "--set", "seeds=[1]"]) == 2
    assert not (tmp_path / "m").exists()


def test_one_session_type(session_files):
    from pathlib import Path

    from mmneuro.apply import Session as ApplySession
    from mmneuro.config import Session

    assert ApplySession is Session
    table = session_files / "s.tsv"
    table.write_text(HEADER + "s1\ta.wav\tphy\tphy\t\t\t0.5\t\n")
    (s1,) = load_sessions(table)
    assert s1.modalities == ("audio", "neural") and s1.syllables is None
    assert Session.audio_only("x=rec.wav") == Session("x", audio=Path("rec.wav"))
    with pytest.raises(InputError, match="needs an audio or a neural recording"):
        Session("s2")
    with pytest.raises(InputError, match="neural_format: None is not one of phy, nwb, table, spikeinterface"):
        Session("s2", neural=Path("phy"))
