# Shared helpers: validated config, the sessions table, paths and the command that rules call.
import json
import os
import re
import shlex
import sys

from snakemake.utils import validate

from mmneuro.config import load_sessions, validate_config


config.update(validate_config(config, source=" + ".join(map(str, workflow.configfiles)) or "config"))  # one clear error per mistake
validate(config, "../schemas/config.schema.yaml")

SESSIONS = {s.session: s for s in load_sessions(config["sessions"])}
RESULTS = config["results"]
envvars:
    "PATH",


# Rules call the `mmneuro` command of the Python that runs Snakemake, whatever PATH holds.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


wildcard_constraints:
    session="|".join(map(re.escape, SESSIONS)) if SESSIONS else "NONE",
    model="|".join(config["models"]),


def session_dir(session):
    return f"{RESULTS}/{session}"


def neural_sessions():
    return [s for s, info in SESSIONS.items() if info.neural is not None and info.audio is not None]


def set_args(overrides):
    """`--set key=value` arguments (values as JSON) for a dict of parameters: the one way every rule
    passes parameters to its `mmneuro <stage>` command."""
    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in sorted(overrides.items()))


def channel_setting():
    """The audio channel as an audio parameter, when the config names one."""
    channel = config["audio"]["channel"]
    return {"channel": channel} if channel is not None else {}


def all_outputs():
    return [f"{RESULTS}/analysis_report.html"]


def clock_args(session):
    s = SESSIONS[session]
    if s.sync_audio is not None:
        return f"--sync-audio {shlex.quote(str(s.sync_audio))} --sync-neural {shlex.quote(str(s.sync_neural))}"
    return f"--offset-s {s.clock_offset_s} --drift {s.clock_drift or 0.0}"


def dataset_session_args():
    args = []
    for s, info in SESSIONS.items():
        if info.audio is None:
            continue  # syllables come from the audio stage
        counts = f"{session_dir(s)}/counts.nc" if info.neural is not None else "-"
        args.append(f"--session {s} {session_dir(s)}/syllables.nc {counts}")
        if info.units == "own" and info.neural is not None:
            args.append(f"--own-units {s}")
    return " ".join(args)


def model_kind(model):
    """A model name is its kind, optionally with a variant suffix: mvae_factorised trains an mvae."""
    return model.split("_")[0]


def train_settings(model, seed=None):
    """One training run's settings for ``model``: config `train` + its `model_overrides`, with the
    config's `seed` (or ``seed``); `seeds` (the workflow's list of extra runs) is left out."""
    settings = {**config["train"], "seed": config["seed"], **config["model_overrides"].get(model, {})}
    settings.pop("seeds", None)
    return settings if seed is None else {**settings, "seed": seed}


def extra_seeds(model):
    """The seeds of `seeds` (train or the model's overrides) other than the main run's."""
    seeds = {**config["train"], **config["model_overrides"].get(model, {})}.get("seeds") or []
    return [k for k in seeds if k != train_settings(model)["seed"]]


def seed_runs(model):
    """The folders of ``model``'s runs: the main one (results/models/<model>), then one per extra seed."""
    return [f"{RESULTS}/models/{model}"] + [f"{RESULTS}/models/{model}/seeds/{k}" for k in extra_seeds(model)]


def own_units():
    """Whether a session with neural data is sorted on its own (sessions table `units: own`): then
    the analyses, scores and consistency are per session (docs/multisession.md)."""
    return any(s.units == "own" and s.neural is not None for s in SESSIONS.values())


def consistency_dirs():
    """results/consistency/<model> of every model trained with extra seeds."""
    return [f"{RESULTS}/consistency/{m}" for m in config["models"] if extra_seeds(m)]


def truth_session_dirs():
    """Demo sessions carry their planted truth beside the audio (ground_truth.json): their folders."""
    return [d for d in map(truth_dir, SESSIONS) if d is not None]


def truth_files():
    """The sessions' ground_truth.json files (the score rule's inputs)."""
    return [str(d / "ground_truth.json") for d in truth_session_dirs()]


def truth_dirs():
    """`--truth SESSION_DIR ...` of the sessions with a planted truth ("" without one)."""
    dirs = [str(d) for d in truth_session_dirs()]
    return ("--truth " + " ".join(shlex.quote(d) for d in dirs)) if dirs else ""


def scores(models):
    """The score folders of ``models`` when the sessions have a planted truth: one per model, or, for
    sessions sorted on their own, one per model and session with a truth and neural data."""
    if not own_units():
        return [f"{RESULTS}/scores/{m}" for m in models] if truth_files() else []
    return [f"{RESULTS}/scores/{m}/sessions/{s}" for m in models for s in neural_sessions() if truth_dir(s)]


def truth_dir(session):
    """The folder of a session's planted truth (ground_truth.json beside its audio), else None."""
    audio = SESSIONS[session].audio
    return audio.parent if audio is not None and (audio.parent / "ground_truth.json").is_file() else None


def apply_config_file():
    """The config file in effect (the first given on the command line wins), for parameter comparison."""
    return workflow.configfiles[0] if workflow.configfiles else ""
