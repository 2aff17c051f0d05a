"""The workflow configuration: schema validation with defaults, and the sessions table.

``load_config("config/config.yaml")`` returns the config with every default filled in; any mistake
raises one :class:`InputError` naming the file, the key and the problem.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from mmneuro.errors import InputError

NEURAL_FORMATS = ("phy", "nwb", "table")
SESSION_COLUMNS = (
    "session", "audio", "neural", "neural_format",
    "sync_audio", "sync_neural", "clock_offset_s", "clock_drift",
)
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Session:
    """One recording session: where its files are and how its clocks relate.

    ``audio`` or ``neural`` is None for a session that lacks that modality.
    Clock: ``t_neural = clock_offset_s + (1 + clock_drift) * t_audio``, either given
    or fitted from the two sync-pulse files.
    """

    session: str
    audio: Path | None
    neural: Path | None
    neural_format: str | None
    sync_audio: Path | None = None
    sync_neural: Path | None = None
    clock_offset_s: float | None = None
    clock_drift: float | None = None


def schema() -> dict:
    """The config's JSON schema (also used by Snakemake's ``validate``)."""
    text = resources.files("mmneuro").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_config(path: str | Path) -> dict:
    """Read, validate and complete a config file; relative paths are relative to the working dir."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(path, f"not valid YAML ({err})") from err
    return validate_config(raw, source=str(path))


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate ``config`` against the schema and return a copy with every default filled in."""
    import jsonschema

    config = copy.deepcopy(config)
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(source, f"{key}: {_describe(err)}")
    _fill_defaults(config, schema())
    return config


def _describe(err) -> str:
    """A one-line explanation of a jsonschema error, in the user's terms."""
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return f"{err.message.split('(')[-1].rstrip(')')}; allowed keys: {', '.join(allowed)}"
    if err.validator == "enum":
        return f"{err.instance!r} is not one of {', '.join(map(str, err.validator_value))}"
    if err.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return f"must be {op[err.validator]} {err.validator_value} (got {err.instance!r})"
    return err.message


def _fill_defaults(node: dict, node_schema: dict) -> None:
    for key, sub in node_schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if isinstance(node.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(node[key], sub)


def load_sessions(path: str | Path, check_files: bool = True) -> list[Session]:
    """Read the sessions table (TSV). Relative paths are resolved against the table's folder."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "sessions table not found")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, comment="#")
    unknown = sorted(set(table.columns) - set(SESSION_COLUMNS))
    if unknown:
        raise InputError(path, f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(SESSION_COLUMNS)}")
    if "session" not in table.columns:
        raise InputError(path, "missing column 'session'")
    if table.empty:
        raise InputError(path, "no sessions listed")
    sessions = [_parse_row(path, i, row) for i, row in enumerate(table.to_dict("records"), start=2)]
    names = [s.session for s in sessions]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(path, f"duplicate session id(s): {', '.join(dupes)}")
    if check_files:
        for line, s in enumerate(sessions, start=2):
            for key in ("audio", "neural", "sync_audio", "sync_neural"):
                p = getattr(s, key)
                if p is not None and not p.exists():
                    raise InputError(path, f"line {line} (session {s.session}): {key}: file not found: {p}")
    return sessions


def _parse_row(table_path: Path, line: int, row: dict) -> Session:
    where = f"line {line}"
    sid = row.get("session", "").strip()
    if not _SESSION_ID.match(sid):
        raise InputError(table_path, f"{where}: session: {sid!r} is not a valid id (letters, digits, _ . -)")
    where = f"line {line} (session {sid})"

    def path_of(key: str) -> Path | None:
        value = row.get(key, "").strip()
        return (table_path.parent / value) if value else None

    def number(key: str) -> float | None:
        value = row.get(key, "").strip()
        if not value:
            return None
        try:
            x = float(value)
        except ValueError:
            raise InputError(table_path, f"{where}: {key}: {value!r} is not a number") from None
        if not math.isfinite(x):
            raise InputError(table_path, f"{where}: {key}: must be finite (got {value})")
        return x

    audio, neural = path_of("audio"), path_of("neural")
    fmt = row.get("neural_format", "").strip() or None
    if audio is None and neural is None:
        raise InputError(table_path, f"{where}: neither audio nor neural is given")
    if neural is not None and fmt not in NEURAL_FORMATS:
        raise InputError(
            table_path, f"{where}: neural_format: {fmt!r} is not one of {', '.join(NEURAL_FORMATS)}"
        )
    sync_audio, sync_neural = path_of("sync_audio"), path_of("sync_neural")
    if (sync_audio is None) != (sync_neural is None):
        raise InputError(table_path, f"{where}: sync_audio and sync_neural must be given together")
    offset, drift = number("clock_offset_s"), number("clock_drift")
    if neural is not None and audio is not None and sync_audio is None and offset is None:
        raise InputError(table_path, f"{where}: give clock_offset_s (and optionally clock_drift) or sync_audio + sync_neural")
    if drift is not None and abs(drift) >= 0.01:
        raise InputError(table_path, f"{where}: clock_drift: {drift} is not a plausible clock drift (|drift| < 0.01)")
    return Session(sid, audio, neural, fmt if neural is not None else None, sync_audio, sync_neural, offset, drift)
