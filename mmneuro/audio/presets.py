"""Audio-stage parameters: defaults, named presets, and ``preset + overrides -> params``.

Every time is in seconds and every frequency in Hz (never samples or FFT bins), so a recording at
another sampling rate is analysed with the same windows and gives the same results. Levels are in
dB above the recording's own per-frequency noise floor, and the detection thresholds apply to an
amplitude in [0, 1] that does not depend on the STFT length or the band's width (see segment.py).
Pure Python: imported by the CLI parser, so no numpy here.
"""

from __future__ import annotations

import json

from mmneuro.errors import InputError

DEFAULT_PRESET = "mouse"

# name -> (default, one-line meaning). The one place a parameter is declared.
PARAMETERS: dict[str, tuple[object, str]] = {
    # band and STFT
    "min_freq_hz": (30_000.0, "lower edge of the USV band; the STFT is cropped to the band"),
    "max_freq_hz": (110_000.0, "upper edge of the USV band; needs a sampling rate >= 2x this"),
    "window_s": (0.004096, "STFT window length (Hann); 1024 samples at 250 kHz"),
    "hop_s": (0.002048, "STFT hop between frames; 512 samples at 250 kHz"),
    # noise floor and level scale
    "floor_sample_s": (30.0, "audio (s) sampled evenly across the file to estimate the noise floor"),
    "floor_snippet_s": (1.0, "length of each evenly spaced snippet used for the noise floor"),
    "level_lo_db": (6.0, "dB above the noise floor mapped to 0 (AVA's spec_min_val, made relative)"),
    "level_hi_db": (30.0, "dB above the noise floor mapped to 1 (AVA's spec_max_val, made relative)"),
    # amplitude and thresholds
    "pooling": ("softmax", "pooling of the [0, 1] spectrogram over frequency: 'softmax' or 'mean'"),
    "temperature": (0.1, "softmax temperature (pooling='softmax'); small -> max over frequency"),
    "smoothing_s": (0.002, "s.d. of the Gaussian that smooths the amplitude over time"),
    "edge_threshold": (0.05, "amplitude below which a syllable starts/ends (AVA th_1)"),
    "dip_threshold": (0.15, "a local minimum below this also ends a syllable (AVA th_2)"),
    "peak_threshold": (0.3, "local maxima above this seed syllables (AVA th_3)"),
    "min_dur_s": (0.008, "shortest syllable kept (after merging)"),
    "max_dur_s": (0.3, "longest syllable kept; also the width of the spectrogram window"),
    "min_gap_s": (0.0045, "syllables separated by less than this are merged"),
    # boundaries and splits from a short-window STFT around each boundary (edges.py)
    "edge_window_s": (0.001024, "short STFT window that places boundaries; 256 samples at 250 kHz"),
    "edge_hop_s": (0.000512, "hop of the short-window frames (half the window); 128 samples at 250 kHz"),
    "edge_gap_s": (0.0035, "a dip inside a syllable splits it if the short-window level stays below "
                          "the edge level this long"),
    "split_prominence": (0.1, "dips of the smoothed amplitude at least this deep are checked for a gap"),
    # input
    "channel": (None, "channel of a multi-channel WAV (0-based); required when there are several"),
    "chunk_s": (8.0, "audio read per streamed chunk; bounds memory, does not change results"),
    "workers": (1, "threads computing the STFT of the whole file, the noise floor and "
                   "the syllable spectrograms; does not change results (the workflow sets it to the audio "
                   "rule's threads)"),
    # syllable spectrograms
    "n_freq": (128, "image rows"),
    "n_time": (128, "image columns"),
    "freq_scale": ("linear", "spacing of image rows over the band: 'linear' or 'mel'"),
    "time_stretch": (True, "AVA time stretch: duration -> sqrt(duration * max_dur_s)"),
    "image_rows": ("band", "image rows from the FFT bins: 'band' (mean power over each row's band) "
                           "or 'interp' (linear between the two nearest bins)"),
    "spec_lo_db": (3.0, "dB above the noise floor mapped to 0 in the images"),
    "spec_hi_db": (50.0, "dB above the noise floor mapped to 1 in the images"),
}

DEFAULTS: dict[str, object] = {name: default for name, (default, _) in PARAMETERS.items()}

PRESETS: dict[str, dict] = {
    # AVA's mouse settings (Goffinet et al. 2021, mouse_sylls_mwe.py: 30-110 kHz, 1024/512 at
    # 250 kHz), with levels relative to the noise floor so that loud backgrounds still segment.
    "mouse": {},
    # AVA's summed amplitude (mean over the band, so the scale keeps no band-width dependence)
    # and its 7 ms smoothing; for broadband, loud calls.
    "ava_mean": {"pooling": "mean", "smoothing_s": 0.007, "edge_threshold": 0.02,
                 "dip_threshold": 0.04, "peak_threshold": 0.08, "min_dur_s": 0.03,
                 "max_dur_s": 0.2},
    # Short or quiet calls: lower levels and thresholds, shorter minimum duration, less smoothing.
    "short_quiet": {"level_lo_db": 4.0, "level_hi_db": 24.0, "smoothing_s": 0.001,
                    "edge_threshold": 0.04, "dip_threshold": 0.1, "peak_threshold": 0.2,
                    "min_dur_s": 0.004, "max_dur_s": 0.15, "min_gap_s": 0.002},
    # Deer mouse pups (Jourjine et al. 2023): wider band and long cries up to 1 s.
    "pup": {"min_freq_hz": 20_000.0, "max_freq_hz": 125_000.0, "max_dur_s": 1.0,
            "min_dur_s": 0.015},
}

# parameters that bound memory or use threads but do not change the syllables or their images
RESULT_NEUTRAL = ("chunk_s", "workers")

_CHOICES = {"pooling": ("softmax", "mean"), "freq_scale": ("linear", "mel"), "image_rows": ("interp", "band")}
_POSITIVE = ("max_freq_hz", "window_s", "hop_s", "edge_window_s", "edge_hop_s", "edge_gap_s",
             "floor_sample_s", "floor_snippet_s", "temperature", "max_dur_s", "chunk_s", "workers", "n_freq", "n_time")


def resolve_params(preset: str | None = None, overrides: dict | None = None) -> dict:
    """Return the full parameter dict of ``preset`` (default 'mouse') updated by ``overrides``.

    Overrides may be typed values or strings as given on the command line (``"0.2"``, ``"true"``).
    Unknown keys, unknown presets and inconsistent values raise InputError.
    """
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise InputError(f"preset {name!r}", f"unknown preset; choose one of {sorted(PRESETS)}")
    params = {**DEFAULTS, **PRESETS[name]}
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS:
            raise InputError(f"parameter {key!r}", f"unknown audio parameter; known: {sorted(DEFAULTS)}")
        params[key] = _coerce(key, value)
    _check(params)
    return params


def _coerce(key: str, value):
    """Convert ``value`` to the type of the parameter's default (strings come from the CLI)."""
    default = DEFAULTS[key]
    where = f"parameter {key!r}"
    if key == "channel":
        if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
            return None
        return _to_int(where, value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InputError(where, f"expected true/false, got {value!r}")
    if isinstance(default, int):
        return _to_int(where, value)
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InputError(where, f"expected a number, got {value!r}") from None
    text = str(value)
    # the workflow passes every --set value as JSON (workflow/rules/common.smk set_args)
    return json.loads(text) if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _to_int(where: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(where, f"expected an integer, got {value!r}") from None
    if isinstance(value, bool) or number != int(number):
        raise InputError(where, f"expected an integer, got {value!r}")
    return int(number)


def _check(p: dict) -> None:
    for key, choices in _CHOICES.items():
        if p[key] not in choices:
            raise InputError(f"parameter {key!r}", f"must be one of {choices}, got {p[key]!r}")
    for key in _POSITIVE:
        if not p[key] > 0:
            raise InputError(f"parameter {key!r}", f"must be > 0, got {p[key]!r}")
    if not 0 <= p["min_freq_hz"] < p["max_freq_hz"]:
        raise InputError("parameter 'min_freq_hz'", "must be >= 0 and below max_freq_hz")
    if p["hop_s"] > p["window_s"]:
        raise InputError("parameter 'hop_s'", "must not exceed window_s (frames would skip audio)")
    if p["edge_hop_s"] > p["edge_window_s"]:
        raise InputError("parameter 'edge_hop_s'", "must not exceed edge_window_s (frames would skip audio)")
    if not p["level_lo_db"] < p["level_hi_db"]:
        raise InputError("parameter 'level_lo_db'", "must be below level_hi_db")
    if not p["spec_lo_db"] < p["spec_hi_db"]:
        raise InputError("parameter 'spec_lo_db'", "must be below spec_hi_db")
    if not 0 <= p["edge_threshold"] <= p["dip_threshold"] <= p["peak_threshold"]:
        raise InputError("parameter 'edge_threshold'",
                         "thresholds must satisfy 0 <= edge <= dip <= peak")
    if not 0 <= p["min_dur_s"] <= p["max_dur_s"]:
        raise InputError("parameter 'min_dur_s'", "must be >= 0 and <= max_dur_s")
    if p["min_gap_s"] < 0 or p["smoothing_s"] < 0:
        raise InputError("parameter 'min_gap_s'/'smoothing_s'", "must be >= 0")
    if p["channel"] is not None and p["channel"] < 0:
        raise InputError("parameter 'channel'", f"must be >= 0, got {p['channel']}")
