"""Audio clock -> neural clock: ``t_neural = offset_s + (1 + drift) * t_audio``.

The mapping is either given (offset, drift) or fitted from the same TTL pulses recorded by both
clocks. The pulse trains may each miss pulses and their intervals are irregular, so pulses are
first paired by voting on time differences (the true offset collects one vote per shared pulse,
a wrong one only chance coincidences), then the pairing is refined by least squares over a
window that doubles until it covers the whole recording (so drift never outgrows the tolerance).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from mmneuro.errors import InputError

MIN_PULSES = 3
MAX_DRIFT = 0.01  # |drift| of a real clock pair is ppm-sized; 1 % means the numbers are not a clock
VOTE_PULSES = 64  # audio pulses used for the first vote (enough for a clear peak, drift small)


@dataclass(frozen=True)
class ClockFit:
    """Linear clock map. residual_s: RMS of matched pulses about the fit (NaN if not fitted)."""

    offset_s: float = 0.0
    drift: float = 0.0
    residual_s: float = math.nan
    n_matched: int = 0

    def to_neural(self, t_audio_s):
        """Neural-clock time (s) of audio-clock time(s) ``t_audio_s``."""
        return self.offset_s + (1.0 + self.drift) * np.asarray(t_audio_s, dtype=np.float64)

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self, where: str = "clock") -> "ClockFit":
        """This clock if its offset is finite and its drift plausible (|drift| < MAX_DRIFT), else an InputError."""
        if not (math.isfinite(self.offset_s) and math.isfinite(self.drift)):
            raise InputError(where, f"clock offset and drift must be finite numbers (got offset "
                                    f"{self.offset_s} s, drift {self.drift})")
        if abs(self.drift) >= MAX_DRIFT:
            raise InputError(where, f"clock drift {self.drift:g} is not a plausible clock drift (|drift| < {MAX_DRIFT:g})")
        return self


def fit_clock(
    sync_audio_s,
    sync_neural_s,
    *,
    tolerance_s: float | None = None,
    names: tuple[str, str] = ("sync_audio_s", "sync_neural_s"),
) -> ClockFit:
    """Fit offset and drift from pulse times (s) seen by each clock.

    tolerance_s: largest |prediction error| for two pulses to be paired; default a quarter of the
    median neural inter-pulse interval (pairs stay unambiguous). names: what to call the two inputs
    in error messages (e.g. their file names).
    Raises InputError when the trains cannot be aligned (too few pulses, too few matches, or
    trains so regular that several offsets fit equally well).
    """
    audio = _pulse_train(sync_audio_s, names[0])
    neural = _pulse_train(sync_neural_s, names[1])
    tol = 0.25 * float(np.median(np.diff(neural))) if tolerance_s is None else float(tolerance_s)
    if not tol > 0:
        raise InputError(names[1], "pulse times must be distinct")

    offset = _vote_offset(audio[:VOTE_PULSES], neural, tol, names)
    fit = ClockFit(offset, 0.0)
    span_end = audio[min(VOTE_PULSES, audio.size) - 1]
    while True:
        window = audio[audio <= span_end]
        a, n = _match(window, neural, fit, tol)
        if a.size < MIN_PULSES:
            raise InputError(names[0], f"only {a.size} pulses match {names[1]} (need {MIN_PULSES})")
        fit = _least_squares(a, n)
        if span_end >= audio[-1]:
            break
        span_end = audio[0] + 2.0 * (span_end - audio[0]) + tol
    # Final pairing with the full fit, so pulses near the window edges are not left out.
    a, n = _match(audio, neural, fit, tol)
    return _least_squares(a, n).check(names[1])


def _pulse_train(times, name: str) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).ravel()
    if times.size < MIN_PULSES:
        raise InputError(name, f"{times.size} sync pulses; at least {MIN_PULSES} are needed")
    if not np.all(np.isfinite(times)):
        raise InputError(name, "sync pulse times contain NaN or infinite values")
    return np.sort(times)


def _vote_offset(audio: np.ndarray, neural: np.ndarray, tol: float, names: tuple[str, str]) -> float:
    """Offset with most pulse pairs within ``tol`` of it; refuse when a second offset ties."""
    diffs = np.sort((neural[None, :] - audio[:, None]).ravel())
    votes = np.searchsorted(diffs, diffs + tol, side="right") - np.arange(diffs.size)
    best = int(np.argmax(votes))
    centre = diffs[best] + tol / 2
    elsewhere = np.abs(diffs - centre) > 2 * tol
    runner_up = votes[elsewhere].max(initial=0)
    if votes[best] < MIN_PULSES or runner_up >= 0.8 * votes[best]:
        raise InputError(
            names[1],
            f"cannot align pulse trains with {names[0]}: best offset has {votes[best]} matching pulses, "
            f"another has {runner_up} (pulse intervals too regular, or the trains do not overlap)",
        )
    return float(np.median(diffs[best : best + votes[best]]))


def _match(audio: np.ndarray, neural: np.ndarray, fit: ClockFit, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (audio, neural) whose neural pulse is the nearest to the predicted time, within tol."""
    predicted = fit.to_neural(audio)
    right = np.clip(np.searchsorted(neural, predicted), 1, neural.size - 1)
    nearest = np.where(predicted - neural[right - 1] < neural[right] - predicted, right - 1, right)
    ok = np.abs(neural[nearest] - predicted) < tol
    # One neural pulse may answer only one audio pulse: drop pulses claimed twice.
    claimed, counts = np.unique(nearest[ok], return_counts=True)
    ok &= ~np.isin(nearest, claimed[counts > 1])
    return audio[ok], neural[nearest[ok]]


def _least_squares(audio: np.ndarray, neural: np.ndarray) -> ClockFit:
    """Least-squares line neural = offset + (1 + drift) audio (centred for conditioning)."""
    if audio.size < 2 or np.ptp(audio) == 0:
        offset = float(np.mean(neural - audio))
        return ClockFit(offset, 0.0, float(np.sqrt(np.mean((neural - audio - offset) ** 2))), int(audio.size))
    mean_a, mean_n = audio.mean(), neural.mean()
    da = audio - mean_a
    slope = float(np.dot(da, neural - mean_n) / np.dot(da, da))
    offset = float(mean_n - slope * mean_a)
    resid = neural - (offset + slope * audio)
    return ClockFit(offset, slope - 1.0, float(np.sqrt(np.mean(resid**2))), int(audio.size))
