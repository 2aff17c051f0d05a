"""New sessions and their preprocessing with the parameters stored with a trained model.

A model remembers the audio and neural stage parameters its training data were made with
(``config.json`` → ``model.preprocessing``, written by mmneuro.train). New sessions go through the
same stages with exactly those parameters, so their spectrograms and counts mean what the model
learnt. Audio parameters are in Hz and seconds, so a recording at another sampling rate gives the
same images; neural units must be the same (tracked) units the model was trained on, unless the
session says ``units: own`` (mmneuro.apply.readin fits its units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from mmneuro.config import Session
from mmneuro.errors import InputError



def sessions_from_table(path: str | Path, syllables: dict[str, Path] | None = None) -> list[Session]:
    """Sessions from a sessions table (the workflow's TSV; see mmneuro.config.load_sessions);
    ``syllables`` maps session ids to annotation CSVs (needed for rows without audio)."""
    from mmneuro.config import load_sessions, with_syllables

    return with_syllables(load_sessions(path), dict(syllables or {}), path)


def check_syllable_source(session: Session) -> None:
    """A session to apply a model to needs syllables: from its audio or a syllable CSV."""
    if session.audio is None and session.syllables is None:
        raise InputError(session.session, "a neural-only session needs a syllable table (CSV with onset_s, offset_s)")


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
    from mmneuro.stages import audio_params

    return {"audio": audio_params(config["audio"]), "neural": dict(config["neural"])}


def param_differences(stored: dict, current: dict) -> list[str]:
    """'stage.key: model X, now Y' for every parameter whose value differs (keys absent on either side too),
    but those that do not change results (audio.presets.RESULT_NEUTRAL: a model's record from before
    ``workers`` existed, or other threads, is no difference)."""
    from mmneuro.audio.presets import RESULT_NEUTRAL

    lines = []
    for stage in ("audio", "neural"):
        a, b = stored.get(stage) or {}, current.get(stage) or {}
        if not a or not b:
            continue
        for key in sorted(set(a) | set(b)):
            if stage == "audio" and key in RESULT_NEUTRAL:
                continue
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


def preprocess(session: Session, params: dict, reference_units: np.ndarray | None = None,
               progress: bool = False) -> xr.Dataset:
    """Run the audio and neural stages on ``session`` with ``params`` (from :func:`stored_params`).

    Returns one Dataset per the data contract: ``spectrogram`` (syllable, freq, time) when there is
    audio, ``counts`` (syllable, unit, bin) and ``total_counts`` (syllable, unit) when there is
    neural data, the syllable coordinates, and ``has_audio``/``has_neural`` (syllable, int8).
    reference_units: the unit ids the model was trained on; other units are an InputError.
    """
    from mmneuro.audio.spectrogram import image_freq_hz, image_time_s
    from mmneuro.stages import audio_stage

    check_syllable_source(session)
    if session.audio is not None:
        if not params.get("audio"):
            raise InputError(session.audio, "the model has no audio modality; give this session's neural data")
        ds = audio_stage(session, params["audio"], progress=progress)
        syllables = ds
    else:
        from mmneuro.neural.syllables import read_syllables

        syllables = read_syllables(session.syllables, session=session.session)
        ds = None
    if session.neural is not None:
        if not params.get("neural"):
            raise InputError(session.neural, "the model has no neural modality; give this session's audio")
        from mmneuro.neural.stage import PARAM_KEYS, session_counts

        stored = {k: v for k, v in params["neural"].items() if k in PARAM_KEYS}
        counts = session_counts(session, syllables, stored, reference_units=reference_units, progress=progress)
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
