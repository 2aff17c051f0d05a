"""The preprocessing stages on objects: Sessions -> audio -> neural -> one dataset, nothing written.

``preprocess(load_sessions("sessions.tsv"))`` gives the Dataset the workflow writes as
``results/dataset.nc`` for the same parameters (values, coordinates, split), calling the same
stage functions as ``mmneuro audio``, ``mmneuro neural`` and ``mmneuro dataset``.
"""

from __future__ import annotations

import warnings

import xarray as xr

from mmneuro.config import Session
from mmneuro.errors import InputError


def audio_params(audio: dict | None = None) -> dict:
    """The audio-stage parameters (mmneuro.audio.resolve_params) of the config's ``audio`` section
    ({"preset", "set", "channel"}; missing keys: the defaults)."""
    from mmneuro.audio.presets import DEFAULT_PRESET, resolve_params

    audio = dict(audio or {})
    unknown = sorted(set(audio) - {"preset", "set", "channel"})
    if unknown:
        raise InputError("audio", f"unknown key(s) {', '.join(unknown)}; allowed: preset, set, channel")
    overrides = dict(audio.get("set") or {})
    if audio.get("channel") is not None:
        overrides["channel"] = audio["channel"]
    return resolve_params(audio.get("preset") or DEFAULT_PRESET, overrides)


def audio_stage(session: Session, params: dict, *, progress: bool = False) -> xr.Dataset:
    """The syllables.nc Dataset of ``session``'s WAV (segmented, or from its ``syllables`` CSV);
    params: from :func:`audio_params`."""
    from mmneuro.audio.syllables import syllable_dataset

    return syllable_dataset(session.audio, session.session, params, annotations=session.syllables, progress=progress)


def preprocess(sessions: list[Session], *, audio: dict | None = None, neural: dict | None = None,
               dataset: dict | None = None, progress: bool = True) -> xr.Dataset:
    """The dataset.nc Dataset of ``sessions`` (mmneuro.config.Session, e.g. from load_sessions), in memory.

    audio, neural, dataset: the workflow config's sections of those names (``dataset`` may also
    hold the split ``seed``, the config's top-level ``seed``); missing keys take the defaults.
    As the workflow, a session is used if it has audio, and its neural data only together with audio.
    """
    from mmneuro.dataset import assemble_parts
    from mmneuro.io import stored_attrs
    from mmneuro.neural.stage import neural_params, session_counts

    if not sessions:
        raise InputError("sessions", "no sessions to preprocess")
    params = audio_params(audio)
    neural_params(neural)  # a bad parameter fails before any session is processed
    skipped = [s.session for s in sessions if s.audio is None]
    if skipped:
        warnings.warn(f"sessions without audio are not used (as in the workflow): {', '.join(skipped)}", stacklevel=2)
    parts = []
    for session in (s for s in sessions if s.audio is not None):
        syllables = audio_stage(session, params, progress=progress)
        counts = session_counts(session, syllables, neural, progress=progress) if session.neural is not None else None
        if counts is not None:  # attributes as the workflow's counts.nc holds them, so dataset.nc's match
            counts.attrs = stored_attrs(counts.attrs)
        parts.append((session.session, syllables, counts))
    ds = assemble_parts(parts, **(dataset or {}))
    ds.attrs = stored_attrs(ds.attrs)
    return ds
