# Shared helpers: validated config, the sessions table, paths and the command that rules call.
import json
import re
import shlex
import sys

from snakemake.utils import validate

from mmneuro.config import load_sessions, validate_config


config.update(validate_config(config, source="config"))  # one clear error per mistake
validate(config, "../schemas/config.schema.yaml")

SESSIONS = {s.session: s for s in load_sessions(config["sessions"])}
RESULTS = config["results"]
MMNEURO = f"{shlex.quote(sys.executable)} -m mmneuro"


wildcard_constraints:
    session="|".join(map(re.escape, SESSIONS)) if SESSIONS else "NONE",
    model="|".join(config["models"]),


def session_dir(session):
    return f"{RESULTS}/{session}"


def neural_sessions():
    return [s for s, info in SESSIONS.items() if info.neural is not None and info.audio is not None]


def set_args(overrides):
    """`--set key=value` arguments (values as JSON) for a dict of parameter overrides."""
    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in sorted(overrides.items()))


def all_outputs():
    return [f"{RESULTS}/analysis_report.html"]
