"""New sessions and their preprocessing with the parameters stored with a trained model.

A model remembers the audio and neural stage parameters its training data were made with
(``config.json`` → ``model.preprocessing``, written by mmneuro.train). New sessions go through the
same stages with exactly those parameters, so their spectrograms and counts mean what the model
learnt. Audio parameters are in Hz and seconds, so a recording at another sampling rate gives the
same images; neural units must be the same (tracked) units the model was trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from mmneuro.errors import InputError, check_session_id

BIN_FIELDS = ("pre_s", "post_s", "bin_s", "latency_s", "warp_bins")


@dataclass(frozen=True)
class NewSession:
    """One new recording. ``audio`` and/or ``neural`` may be None (a missing modality).

    neural_format: phy | nwb | table. Clock: ``t_neural = clock_offset_s + (1 + clock_drift) *
    t_audio``, given or fitted from the sync-pulse files (.npy, s). syllables: CSV with onset_s,
    offset_s (s, audio clock) to use instead of segmenting; required when there is no audio.
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

    def __post_init__(self):
        check_session_id(self.session)
        if self.audio is None and self.neural is None:
            raise InputError(self.session, "a session needs an audio or a neural recording")
        if self.audio is None and self.syllables is None:
            raise InputError(self.session, "a neural-only session needs a syllable table (CSV with onset_s, offset_s)")
        if self.neural is not None and self.neural_format is None:
            raise InputError(self.session, "neural data given without its format (phy, nwb or table)")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, path in (("audio", self.audio), ("neural", self.neural)) if path is not None)

    @classmethod
    def from_table(cls, path: str | Path, syllables: dict[str, Path] | None = None) -> list["NewSession"]:
        """Sessions from a sessions table (the workflow's TSV; see mmneuro.config.load_sessions);
        ``syllables`` maps session ids to annotation CSVs (needed for rows without audio)."""
        from mmneuro.config import load_sessions

        syllables = dict(syllables or {})
        sessions = [cls(**dataclasses.asdict(s), syllables=syllables.pop(s.session, None))
                    for s in load_sessions(path)]
        if syllables:
            raise InputError(path, f"--syllables given for session(s) not in the table: {sorted(syllables)}")
        return sessions

    @classmethod
    def audio_only(cls, spec: str) -> "NewSession":
        """``WAV`` or ``ID=WAV``: an audio-only session (id: the WAV's file stem unless given)."""
        sid, sep, wav = spec.partition("=")
        path = Path(wav if sep else spec)
        return cls(sid if sep else path.stem, audio=path)


def stored_params(model, where: str | Path = "model") -> dict:
    """The preprocessing the model was trained with: {"audio": dict | None, "neural": dict | None,
    "neural_input": "counts" | "total_counts"}; a modality the model has but no record of is an InputError."""
    record = getattr(model.config, "preprocessing", None) or {}
    out = {"audio": record.get("audio_params"), "neural": record.get("neural_params"),
           "neural_input": record.get("neural_input", "counts")}
    for name in model.modalities:
        if not out[name]:
            raise InputError(where, f"the model's config has no {name}_params in its preprocessing record "
                                    "(trained before mmneuro.train stored them?); retrain it to apply it to new data")
    return out


def current_params(config: dict) -> dict:
    """The audio and neural parameters a validated workflow config (mmneuro.config.load_config)
    would use now, in the form :func:`stored_params` returns, for :func:`param_differences`."""
    from mmneuro.audio.presets import resolve_params

    audio = config["audio"]
    neural = dict(config["neural"])
    return {"audio": resolve_params(audio["preset"], {**audio["set"], "channel": audio["channel"]}),
            "neural": neural}


def param_differences(stored: dict, current: dict) -> list[str]:
    """'stage.key: model X, now Y' for every parameter whose value differs (keys absent on either side too)."""
    lines = []
    for stage in ("audio", "neural"):
        a, b = stored.get(stage) or {}, current.get(stage) or {}
        if not a or not b:
            continue
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if _normalise(va) != _normalise(vb):
                lines.append(f"{stage}.{key}: model {va!r}, now {vb!r}")
    return lines


def _normalise(value):
    if isinstance(value, (list, tuple)):
        return sorted(map(str, value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def preprocess(session: NewSession, params: dict, reference_units: np.ndarray | None = None,
               progress: bool = False) -> xr.Dataset:
    """Run the audio and neural stages on ``session`` with ``params`` (from :func:`stored_params`).

    Returns one Dataset per the data contract: ``spectrogram`` (syllable, freq, time) when there is
    audio, ``counts`` (syllable, unit, bin) and ``total_counts`` (syllable, unit) when there is
    neural data, the syllable coordinates, and ``has_audio``/``has_neural`` (syllable, int8).
    reference_units: the unit ids the model was trained on; other units are an InputError.
    """
    from mmneuro.audio.spectrogram import image_freq_hz, image_time_s
    from mmneuro.audio.syllables import syllable_dataset

    if session.audio is not None:
        if not params.get("audio"):
            raise InputError(session.audio, "the model has no audio modality; give this session's neural data")
        ds = syllable_dataset(session.audio, session.session, params["audio"], annotations=session.syllables,
                              progress=progress)
        syllables = ds
    else:
        from mmneuro.neural.syllables import read_syllables

        syllables = read_syllables(session.syllables, session=session.session)
        ds = None
    if session.neural is not None:
        if not params.get("neural"):
            raise InputError(session.neural, "the model has no neural modality; give this session's audio")
        counts = _counts(session, syllables, params["neural"], reference_units, progress)
        if ds is None:
            ds = counts.drop_vars([c for c in counts.coords if counts[c].dims == ("unit",) and c != "unit"])
            if params.get("audio"):  # the frequency/time axes of the spectrograms predicted for it
                ds = ds.assign_coords(freq_hz=("freq", image_freq_hz(params["audio"])),
                                      time_s=("time", image_time_s(params["audio"])))
        else:
            ds = ds.assign({v: counts[v] for v in ("counts", "total_counts")})
        ds.attrs["neural_params"] = counts.attrs["params"]
        ds.attrs.update({k: counts.attrs[k] for k in ("clock_offset_s", "clock_drift", "sync_residual_s",
                                                      "neural_path", "neural_format")})
    n = ds.sizes["syllable"]
    for name in ("audio", "neural"):
        ds.coords[f"has_{name}"] = ("syllable", np.full(n, name in session.modalities, dtype=np.int8))
    ds.attrs["session"] = session.session
    return ds


def _counts(session: NewSession, syllables, neural_params: dict, reference_units, progress) -> xr.Dataset:
    from mmneuro.neural import BinParams, ClockFit, bin_counts, fit_clock, read_units

    labels = tuple(neural_params.get("labels") or ("good",))
    units = read_units(session.neural, session.neural_format, labels=labels)
    if reference_units is not None and not np.array_equal(units.unit_ids, reference_units):
        extra = sorted(set(units.unit_ids.tolist()) - set(reference_units.tolist()))
        missing = sorted(set(reference_units.tolist()) - set(units.unit_ids.tolist()))
        raise InputError(session.neural, f"{len(units)} units with labels {list(labels)}, but the model was trained on "
                                         f"{len(reference_units)} (missing {missing[:8]}, not in training {extra[:8]}); "
                                         "apply needs the same tracked units, or drop the neural data")
    if session.sync_audio is not None:
        clock = fit_clock(_pulses(session.sync_audio), _pulses(session.sync_neural),
                          names=(str(session.sync_audio), str(session.sync_neural)))
    else:
        clock = ClockFit(session.clock_offset_s or 0.0, session.clock_drift or 0.0)
    bins = BinParams(**{k: neural_params[k] for k in BIN_FIELDS if k in neural_params})
    return bin_counts(units, syllables, bins, clock, session=session.session, progress=progress)


def _pulses(path) -> np.ndarray:
    if path is None:
        raise InputError("sync", "give both sync-pulse files (audio and neural) or neither")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array of pulse times ({err})") from err
