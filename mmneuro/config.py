"""The workflow configuration: schema validation with defaults, and the sessions table.

``load_config("config/config.yaml")`` returns the config with every default filled in; any mistake
raises one :class:`InputError` naming the file, the key and the problem.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from mmneuro.errors import InputError, check_session_id
from mmneuro.formats import NEURAL_FORMATS, UNIT_SORTS
from mmneuro.neural.sync import MAX_DRIFT

SESSION_COLUMNS = (
    "session", "audio", "neural", "neural_format",
    "sync_audio", "sync_neural", "clock_offset_s", "clock_drift", "units",
)


@dataclass(frozen=True)
class Session:
    """One recording session: where its files are and how its clocks relate.

    ``audio`` (WAV) or ``neural`` (Phy folder, NWB file, spike table or any sorting SpikeInterface
    reads; ``neural_format`` phy | nwb | table | spikeinterface) is None for a session that lacks that modality. Clock: ``t_neural =
    clock_offset_s + (1 + clock_drift) * t_audio``, given or fitted from the two sync-pulse files
    (.npy, s). syllables: CSV with onset_s, offset_s (s, audio clock) to use instead of segmenting
    the audio (the only syllable source of a neural-only session in ``mmneuro apply``).
    """

    session: str
    audio: Path | None = None
    neural: Path | None = None
    neural_format: str | None = None
    sync_audio: Path | None = None
    sync_neural: Path | None = None
    clock_offset_s: float | None = None
    clock_drift: float | None = None
    syllables: Path | None = None
    units: str = "shared"

    def __post_init__(self):
        check_session_id(self.session)
        if self.units not in UNIT_SORTS:
            raise InputError(self.session, f"units: {self.units!r} is not one of {', '.join(UNIT_SORTS)}")
        if self.audio is None and self.neural is None:
            raise InputError(self.session, "a session needs an audio or a neural recording")
        if self.neural is not None and self.neural_format not in NEURAL_FORMATS:
            raise InputError(self.session, f"neural_format: {self.neural_format!r} is not one of "
                                           f"{', '.join(NEURAL_FORMATS)}")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, path in (("audio", self.audio), ("neural", self.neural)) if path is not None)

    @classmethod
    def audio_only(cls, spec: str) -> "Session":
        """``WAV`` or ``ID=WAV``: an audio-only session (id: the WAV's file stem unless given)."""
        sid, sep, wav = spec.partition("=")
        path = Path(wav if sep else spec)
        return cls(sid if sep else path.stem, audio=path)


def schema() -> dict:
    """The config's JSON schema: the YAML file Snakemake's ``validate`` also reads, with ``train`` and
    each ``model_overrides`` entry typed by :func:`train_schema` (from the training dataclasses)."""
    full = static_schema()
    props = full["properties"]
    typed = train_schema(workflow=True)
    props["train"] = {**props["train"], **typed}
    props["model_overrides"] = {**props["model_overrides"], "additionalProperties": typed}
    return full


def static_schema() -> dict:
    """The schema file (mmneuro/schemas/config.schema.yaml) as written."""
    text = resources.files("mmneuro").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


# Schema defaults that belong to the workflow alone (no library function has them).
WORKFLOW_DEFAULTS = {"results", "models", "apply.model", "apply.sessions", "demo.out"}


def code_defaults() -> dict[str, object]:
    """The library's declaration of every default the schema repeats, keyed by the schema's dotted key."""
    import dataclasses
    import inspect

    from mmneuro.apply.pipeline import ApplySettings
    from mmneuro.audio.presets import DEFAULT_PRESET, PARAMETERS
    from mmneuro.dataset import DEFAULTS as SPLIT
    from mmneuro.neural.binning import BinParams
    from mmneuro.neural.stage import DEFAULT_LABELS
    from mmneuro.nwb import NwbMetadata
    from mmneuro.synth import generate_demo

    demo = {k: p.default for k, p in inspect.signature(generate_demo).parameters.items()}
    apply = dataclasses.asdict(ApplySettings())
    return {
        "seed": SPLIT["seed"],
        "audio.preset": DEFAULT_PRESET, "audio.channel": PARAMETERS["channel"][0],
        "neural.labels": list(DEFAULT_LABELS), **{f"neural.{k}": v for k, v in dataclasses.asdict(BinParams()).items()},
        "dataset.val_fraction": SPLIT["val_fraction"], "dataset.test_fraction": SPLIT["test_fraction"],
        **{f"apply.{k}": v for k, v in apply.items() if k not in ("seed", "batch_size")},
        **{f"demo.{k}": demo[k] for k in ("n_sessions", "duration_s", "seed")},
        **{f"nwb.{k}": v for k, v in dataclasses.asdict(NwbMetadata()).items() if k != "session_start_time"},
    }


def schema_default_mismatches(config_schema: dict | None = None) -> list[str]:
    """'key: schema X, code Y' for every default of the schema (default: the file) that differs from
    :func:`code_defaults`, or that the code does not declare (unless in WORKFLOW_DEFAULTS)."""
    code = code_defaults()
    out = []

    def walk(node: dict, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            name = f"{prefix}{key}"
            if "properties" in sub:
                walk(sub, f"{name}.")
            elif "default" in sub and name not in WORKFLOW_DEFAULTS and sub["default"] != {}:
                if name not in code:
                    out.append(f"{name}: schema {sub['default']!r}, not declared in the code")
                elif not _same(sub["default"], code[name]):
                    out.append(f"{name}: schema {sub['default']!r}, code {code[name]!r}")

    walk(config_schema or static_schema(), "")
    return out


def _same(a, b) -> bool:
    """Equal as config values: 99 and 99.0 are, True and 1 are not."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


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
    _check_stage_settings(config, source)
    return config


def _check_stage_settings(config: dict, source: str) -> None:
    """What the static schema cannot type: the audio preset and its overrides (mmneuro.audio.presets),
    and the training keys (typed from the TrainConfig/ModelConfig dataclasses)."""
    from mmneuro.audio.presets import resolve_params

    audio = config.get("audio", {})
    try:
        resolve_params(audio.get("preset"), audio.get("set"))
    except InputError as err:
        raise InputError(source, f"audio: {err}") from None
    check_train_settings(config.get("train", {}), source, "train", workflow=True)
    for model, overrides in config.get("model_overrides", {}).items():
        check_train_settings({**config.get("train", {}), **overrides}, source, f"model_overrides.{model}", workflow=True)


# Limits of training keys; their types and defaults come from the dataclasses, never from here.
TRAIN_LIMITS = {
    "epochs": {"minimum": 1}, "min_steps": {"minimum": 0}, "batch_size": {"minimum": 1}, "lr": {"exclusiveMinimum": 0},
    "seed": {"minimum": 0}, "patience": {"minimum": 0}, "grad_clip": {"minimum": 0},
    "val_fraction": {"minimum": 0, "exclusiveMaximum": 1}, "device": {"enum": ["auto", "cpu", "cuda"]},
    "precision": {"enum": ["auto", "float32", "bfloat16"]},
    "neural_input": {"enum": ["counts", "total_counts"]}, "latent_dim": {"minimum": 1}, "K": {"minimum": 1},
    "iwae_variant": {"enum": ["loose", "tight"]}, "beta": {"minimum": 0}, "beta_start": {"minimum": 0},
    "beta_warmup_epochs": {"minimum": 0}, "mvae_random_subsets": {"minimum": 0},
    "decode_chunk": {"minimum": 0}, "private_dims": {"minimum": 0}, "shared_alignment": {"minimum": 0},
}


# Training keys of the workflow alone (not of one training run): `seeds` trains the model again with
# each seed besides the config's `seed` (results/models/<model>/seeds/<k>/) for the consistency stage.
WORKFLOW_TRAIN_KEYS = {"seeds": {"type": "array", "items": {"type": "integer", "minimum": 0}, "uniqueItems": True}}


def train_schema(workflow: bool = False) -> dict:
    """JSON schema of the flat training config (``mmneuro train --config/--set``, the workflow's
    ``train`` and ``model_overrides``): one property per TrainConfig/ModelConfig field, typed from
    the dataclass annotations, plus ``audio``/``neural`` expert overrides typed from ExpertConfig;
    ``workflow``: with the workflow's own keys (WORKFLOW_TRAIN_KEYS)."""

    from mmneuro.models.config import KINDS, ExpertConfig, ModelConfig
    from mmneuro.train import MODALITIES, TrainConfig

    def properties(cls, skip=()):
        hints = typing.get_type_hints(cls)
        return {f.name: _json_type(hints[f.name]) for f in dataclasses.fields(cls) if f.name not in skip}

    props = properties(ModelConfig, skip=("modalities",)) | properties(TrainConfig)
    for key, limits in TRAIN_LIMITS.items():
        props[key] = {**props[key], **limits}
    props["kind"] = {**props["kind"], "enum": list(KINDS)}
    expert = {"type": "object", "additionalProperties": False, "properties": properties(ExpertConfig)}
    props |= {m: expert for m in MODALITIES}
    if workflow:
        props |= WORKFLOW_TRAIN_KEYS
    return {"type": "object", "additionalProperties": False, "properties": props}


def _json_type(hint) -> dict:
    """JSON schema of a dataclass field's type (int, float, bool, str, dict, list/tuple, unions, None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_json_type(a) for a in args]}
    if hint is type(None):
        return {"type": "null"}
    if origin in (list, tuple):
        item = [a for a in args if a is not Ellipsis]
        return {"type": "array", **({"items": _json_type(item[0])} if item else {})}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}
    return {"type": simple.get(origin or hint, "object")}


def check_train_settings(settings: dict, source: str, prefix: str = "", workflow: bool = False) -> None:
    """InputError naming ``source`` and the key for a training setting of the wrong type or range
    (``workflow``: the workflow's keys such as ``seeds`` are allowed too)."""
    import jsonschema

    # JSON Schema counts 2.0 as an integer; the training loop does not
    strict = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=strict)
    errors = sorted(validator(train_schema(workflow)).iter_errors(settings), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in [prefix, *err.absolute_path] if p != "") or "(top level)"
        raise InputError(source, f"{key}: {_describe(err)}")


def _describe(err) -> str:
    """A one-line explanation of a jsonschema error, in the user's terms."""
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        return f"{err.message.split('(')[-1].rstrip(')')}; allowed keys: {', '.join(allowed)}"
    if err.validator == "enum":
        return f"{err.instance!r} is not one of {', '.join(map(str, err.validator_value))}"
    if err.validator == "anyOf":
        kinds = [s.get("type") for s in err.validator_value]
        return f"{err.instance!r} is not of type {' or '.join(map(str, kinds))}"
    if err.validator == "type":
        return f"{err.instance!r} is not of type {err.validator_value}"
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
    try:
        check_session_id(sid)
    except InputError as err:
        raise InputError(table_path, f"{where}: session: {err.problem}") from None
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
    if drift is not None and abs(drift) >= MAX_DRIFT:
        raise InputError(table_path, f"{where}: clock_drift: {drift} is not a plausible clock drift (|drift| < {MAX_DRIFT})")
    units = row.get("units", "").strip() or "shared"
    if units not in UNIT_SORTS:
        raise InputError(table_path, f"{where}: units: {units!r} is not one of {', '.join(UNIT_SORTS)}")
    return Session(sid, audio, neural, fmt if neural is not None else None, sync_audio, sync_neural, offset, drift,
                   units=units)


def with_syllables(sessions: list[Session], syllables: dict[str, Path], where) -> list[Session]:
    """``sessions`` with the syllable CSVs of ``syllables`` (session id -> CSV) attached; an id that
    names no session is an InputError naming ``where``."""
    unknown = sorted(set(syllables) - {s.session for s in sessions})
    if unknown:
        raise InputError(where, f"syllables given for session(s) not among the sessions: {unknown}")
    return [dataclasses.replace(s, syllables=syllables[s.session]) if s.session in syllables else s
            for s in sessions]
