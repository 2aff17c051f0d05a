"""Audio stage: USV syllable detection and fixed-shape syllable spectrograms.

Three lines from a notebook::

    from mmneuro import audio
    params = audio.resolve_params("mouse", {"peak_threshold": 0.4})
    ds = audio.syllable_dataset("rec.wav", "s01", params)   # the syllables.nc Dataset, in memory
    audio.write_syllables("rec.wav", "s01", "syllables.nc", params)  # streamed to the file

Attributes load their submodule on first use, so importing the CLI stays cheap.
"""

from __future__ import annotations

import importlib

from mmneuro.audio.presets import DEFAULT_PRESET, PARAMETERS, PRESETS, resolve_params

_LAZY = {
    "segment_file": "mmneuro.audio.segment",
    "syllable_dataset": "mmneuro.audio.syllables",
    "read_annotations": "mmneuro.audio.syllables",
    "syllable_table": "mmneuro.audio.syllables",
    "write_syllables": "mmneuro.audio.netcdf_stream",
}

__all__ = ["DEFAULT_PRESET", "PARAMETERS", "PRESETS", "resolve_params", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmneuro.audio' has no attribute {name!r}")
