"""Spike counts per syllable, unit and bin (the ``counts.nc`` layout of docs/data_contract.md).

Every count here is "spikes in half-open bins [edge_k, edge_k+1)" where, for syllable s, the
neural-clock edges are ``start[s] + k * width[s]`` (see :func:`bin_edges`): the onset-aligned
window, the whole-syllable total (one bin) and the time-warped bins (pynapple's ``warp_tensor``
idea: a fixed number of bins stretched over each syllable) are all that one shape.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.neural.qc import unit_qc
from mmneuro.neural.readers import Units
from mmneuro.neural.sync import ClockFit
from mmneuro.neural.syllables import syllable_table


@dataclass(frozen=True)
class BinParams:
    """Window around each syllable onset (audio clock, s) and the other count definitions.

    pre_s/post_s: window from onset - pre_s to onset + post_s, in bins of bin_s (the window must
    be a whole number of bins). latency_s: total counts run from onset to offset + latency_s.
    warp_bins: number of time-warped bins spanning onset -> offset + latency_s (0 = off).
    """

    pre_s: float = 0.05
    post_s: float = 0.2
    bin_s: float = 0.01
    latency_s: float = 0.02
    warp_bins: int = 0

    def __post_init__(self):
        checks = {
            "pre_s": self.pre_s >= -self.post_s,
            "bin_s": self.bin_s > 0,
            "latency_s": self.latency_s >= 0,
            "warp_bins": self.warp_bins >= 0 and int(self.warp_bins) == self.warp_bins,
        }
        for name, ok in checks.items():
            if not (ok and math.isfinite(getattr(self, name))):
                raise InputError(name, f"invalid value {getattr(self, name)!r}")
        if self.n_bins < 1 or abs(self.n_bins * self.bin_s - (self.pre_s + self.post_s)) > 1e-9:
            raise InputError(
                "bin_s", f"window pre_s + post_s = {self.pre_s + self.post_s:g} s is not a whole number of {self.bin_s:g} s bins"
            )

    @property
    def n_bins(self) -> int:
        return int(round((self.pre_s + self.post_s) / self.bin_s))

    def relative_edges_s(self) -> np.ndarray:
        """(n_bins + 1,) bin edges relative to onset, audio clock (rounded to 1e-12 s for clean coords)."""
        return np.round(-self.pre_s + np.arange(self.n_bins + 1) * self.bin_s, 12)


def bin_edges(start_s: np.ndarray, width_s: np.ndarray, n_bins: int) -> np.ndarray:
    """(n_syllables, n_bins + 1) edges ``start + k * width``: the definition every count uses."""
    return start_s[:, None] + np.arange(n_bins + 1)[None, :] * width_s[:, None]


def count_uniform_bins(
    units: Units, start_s: np.ndarray, width_s: np.ndarray, n_bins: int, *, progress: bool | None = None
) -> np.ndarray:
    """Spikes of each unit in n_bins bins of width_s[s] from start_s[s] (neural clock, s).

    Returns (n_syllables, n_units, n_bins) int32 (:func:`count_bin_sets` with one set of bins).
    """
    return count_bin_sets(units, [(start_s, width_s, n_bins)], progress=progress)[0]


def count_bin_sets(units: Units, bin_sets: list[tuple[np.ndarray, np.ndarray, int]], *,
                   progress: bool | None = None, workers: int = 1) -> list[np.ndarray]:
    """Spike counts of each unit in several sets of uniform bins at once: for each (start_s, width_s,
    n_bins) of ``bin_sets``, n_bins bins of width_s[s] from start_s[s] (neural clock, s) per syllable s.

    Returns one (n_syllables, n_units, n_bins) int32 array per set. Each unit's spikes are looked up
    once among the sorted window edges of every set (the spikes before each edge follow from a
    cumulative count); spikes in windows of several bins are then binned as (syllable, spike) pairs.
    Cost O(units x (spikes + windows) + spike-window pairs); no Python loop over spikes or syllables.
    ``workers`` threads count units side by side (numpy releases the GIL); the counts do not change.
    """
    from tqdm import tqdm

    sets, edges = [], []
    for start, width, n_bins in bin_sets:
        start, width = np.asarray(start, dtype=np.float64), np.asarray(width, dtype=np.float64)
        if width.size and (width == width[0]).all():
            width = width[0]  # one width for all: the same arithmetic on a scalar, without a gather per pair
        # one bin per window: counted unit by unit into (unit, syllable) rows, turned around at the end
        # (a unit's counts are then one contiguous row instead of a store every n_units values)
        shape = (len(units), start.size) if n_bins == 1 else (start.size, len(units), n_bins)
        sets.append((start, width, n_bins, np.zeros(shape, dtype=np.int32)))
        if start.size and n_bins:
            edges += [start, bin_edges(start, np.broadcast_to(width, start.shape), n_bins)[:, -1]]
    if not edges:
        return [_syllable_major(out, n_bins) for _, _, n_bins, out in sets]
    lookup = _EdgeLookup(np.concatenate(edges))

    def count_unit(u: int) -> None:  # writes unit u's counts only: units can run on threads side by side
        spikes = units.spikes(u)
        before = lookup.spikes_before(spikes)
        at = 0
        for start, width, n_bins, out in sets:
            if not start.size or not n_bins:
                continue
            first, last = before[at:at + start.size], before[at + start.size:at + 2 * start.size]
            at += 2 * start.size
            n_in = np.maximum(last - first, 0)
            if n_bins == 1:  # one bin is the whole window: the look-ups already counted it
                out[u] = n_in
            else:
                _bin_pairs(out, u, spikes, start, width, first, n_in)

    if workers > 1:
        from mmneuro.audio.stft import ordered_map  # here: scipy.fft's import is not the neural stage's cost

        done = ordered_map(count_unit, range(len(units)), workers)
    else:
        done = map(count_unit, range(len(units)))
    for _ in tqdm(done, total=len(units), desc="binning units", unit="unit", disable=None if progress is None else not progress):
        pass
    return [_syllable_major(out, n_bins) for _, _, n_bins, out in sets]


def _syllable_major(out: np.ndarray, n_bins: int) -> np.ndarray:
    """The (n_syllables, n_units, n_bins) array of a set's counts (one-bin sets are counted as (unit, syllable))."""
    if n_bins != 1:
        return out
    turned = np.empty((out.shape[1], out.shape[0], 1), dtype=out.dtype)
    turned[:, :, 0] = out.T
    return turned


class _EdgeLookup:
    """How many of a unit's sorted spikes lie before each of a fixed set of edges.

    A spike's rank among the sorted edges (edges <= spike) comes from a table over CELLS equal cells
    per edge across the edges' span: a spike whose cell holds no edge has the rank of its cell, and
    only spikes in cells with edges (at most one cell in CELLS) need a binary search (docs/neural.md,
    "Benchmark"). Exact: a spike and an edge in different cells are ordered as their cells are,
    because the cell is a monotone function of the time.
    """

    CELLS = 4

    def __init__(self, edges: np.ndarray):
        self.order = np.argsort(edges, kind="stable")
        self.sorted = edges[self.order]
        self.n_cells = self.CELLS * edges.size
        self.lo, span = self.sorted[0], self.sorted[-1] - self.sorted[0]
        with np.errstate(over="ignore"):
            self.per_s = self.n_cells / span if 0 < span < np.inf else 0.0
        if not 0 < self.per_s < np.inf:  # one cell holding every edge: all spikes go to the binary search
            self.per_s = 0.0
            self.lo = 0.0
        # edges_below[c]: edges in cells < c; a cell c holds edges_below[c] .. edges_below[c + 1] - 1
        # int32 where it fits: every spike reads the table twice, and at half the size it stays in
        # cache (10 % less CPU for the whole binning than int64 or no table; docs/neural.md)
        dtype = np.int32 if edges.size < np.iinfo(np.int32).max else np.int64
        self.edges_below = np.searchsorted(self._cell(self.sorted), np.arange(self.n_cells + 2), side="left").astype(dtype)

    def _cell(self, t: np.ndarray) -> np.ndarray:
        c = (t - self.lo) * self.per_s
        np.clip(c, 0, self.n_cells, out=c)  # times are finite: the readers and syllable checks refuse others
        return c.astype(np.intp)

    def spikes_before(self, spikes: np.ndarray) -> np.ndarray:
        """(n_edges,) number of ``spikes`` (sorted) strictly before each edge, in the edges' order."""
        cell = self._cell(spikes)
        rank = self.edges_below[cell]  # spike i lies before sorted edge j iff j >= rank[i]
        ambiguous = np.flatnonzero(self.edges_below[1:][cell] != rank)
        if ambiguous.size:
            rank[ambiguous] = np.searchsorted(self.sorted, spikes[ambiguous], side="right")
        before = np.empty(self.sorted.size, dtype=np.int64)
        before[self.order] = np.cumsum(np.bincount(rank, minlength=self.sorted.size + 1))[:-1]
        return before


def _bin_pairs(out: np.ndarray, u: int, spikes: np.ndarray, start: np.ndarray, width: np.ndarray | float,
               first: np.ndarray, n_in: np.ndarray) -> None:
    """Write unit u's counts into out (syllable, unit, bin): syllable s holds spikes first[s] ..
    first[s] + n_in[s] - 1 of the unit's sorted ``spikes``; width is per syllable or one for all."""
    total = int(n_in.sum())
    if total == 0:
        return
    n_syl, n_units, n_bins = out.shape
    # Expand (syllable, spike) pairs: for syllable s, spikes first[s] .. first[s] + n_in[s] - 1.
    s = np.repeat(np.arange(n_syl), n_in)
    pair_start = np.cumsum(n_in) - n_in
    t = spikes[np.arange(total) - (pair_start - first)[s]]  # a gather: faster than a second repeat
    b = _bin_index(t, start[s], width if np.ndim(width) == 0 else width[s])
    # The window's edges found the pairs, so b is in range; a pair outside would be dropped.
    key = s * (n_units * n_bins) + b  # the flat position in out of unit 0's count
    if b.min() < 0 or b.max() >= n_bins:
        key = key[(b >= 0) & (b < n_bins)]
    # Pairs come ordered by syllable then time, so keys are non-decreasing: equal keys are
    # adjacent and a run-length count replaces a scatter-add.
    run_start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    run_length = np.diff(np.concatenate([run_start, [key.size]]))
    out.reshape(-1)[key[run_start] + u * n_bins] = run_length


def _bin_index(t: np.ndarray, start: np.ndarray, width: np.ndarray | float) -> np.ndarray:
    """Index k with start + k*width <= t < start + (k+1)*width, exactly as :func:`bin_edges` rounds.

    floor((t - start) / width) can be off by one at an edge through rounding; one step of
    correction against the edges computed the same way as bin_edges makes the result exact.
    """
    k = np.floor((t - start) / width)
    k -= t < start + k * width
    k += t >= start + (k + 1) * width
    return k.astype(np.int64)


def bin_counts(
    units: Units,
    syllables: xr.Dataset | pd.DataFrame,
    params: BinParams | dict | None = None,
    clock: ClockFit | None = None,
    *,
    session: str | None = None,
    progress: bool | None = None,
    require_overlap: bool = True,
    workers: int = 1,
) -> xr.Dataset:
    """Syllable-aligned spike counts of ``units`` as the counts.nc Dataset.

    syllables: syllables.nc Dataset or a table with onset_s, offset_s (audio clock, s) and
    optionally syllable / session. params: :class:`BinParams` or a dict of its fields.
    clock: audio -> neural clock map (default identity). Windows are laid out in audio time and
    mapped through the clock, so a bin lasts bin_s * (1 + drift) neural seconds.
    require_overlap: refuse (InputError) a clock that puts (almost) every window outside the
    spikes' own time span, which would give all-zero counts. workers: threads counting units side
    by side (:func:`count_bin_sets`).
    """
    params = params if isinstance(params, BinParams) else BinParams(**(params or {}))
    clock = (clock or ClockFit()).check()
    table = syllable_table(syllables, session=session)
    session = session or (str(table["session"].iloc[0]) if len(table) else "")
    onset = table["onset_s"].to_numpy()
    offset = table["offset_s"].to_numpy()
    scale = 1.0 + clock.drift
    rel = params.relative_edges_s()

    window_start = clock.to_neural(onset + rel[0])
    _warn_outside_recording(units, window_start, clock.to_neural(onset + rel[-1]))
    if require_overlap:
        _check_overlap(units, window_start, clock.to_neural(onset + rel[-1]), clock)
    syllable_start = clock.to_neural(onset)
    syllable_span = (offset - onset + params.latency_s) * scale
    bin_sets = [(window_start, np.full(onset.size, params.bin_s * scale), params.n_bins), (syllable_start, syllable_span, 1)]
    if params.warp_bins:
        bin_sets.append((syllable_start, syllable_span / params.warp_bins, params.warp_bins))
    counts, total, *warped = count_bin_sets(units, bin_sets, progress=progress, workers=workers)
    total = total[:, :, 0]

    qc = unit_qc(units)
    ds = xr.Dataset(
        {"counts": (("syllable", "unit", "bin"), counts), "total_counts": (("syllable", "unit"), total)},
        coords={
            "syllable": table["syllable"].to_numpy(dtype=str),
            "session": ("syllable", table["session"].to_numpy(dtype=str)),
            "onset_s": ("syllable", onset),
            "offset_s": ("syllable", offset),
            "unit": units.unit_ids.astype(np.int64),
            "unit_label": ("unit", units.labels.astype(str)),
            "firing_rate_hz": ("unit", qc["firing_rate_hz"].to_numpy(np.float64)),
            "isi_violation_fraction": ("unit", qc["isi_violation_fraction"].to_numpy(np.float64)),
            "bin_start_s": ("bin", rel[:-1]),
            "bin_end_s": ("bin", rel[1:]),
        },
    )
    if params.warp_bins:
        frac = np.arange(params.warp_bins + 1) / params.warp_bins
        ds["warped_counts"] = (("syllable", "unit", "warp_bin"), warped[0])
        ds.coords["warp_bin_start_frac"] = ("warp_bin", frac[:-1])
        ds.coords["warp_bin_end_frac"] = ("warp_bin", frac[1:])
    ds.attrs = {
        "params": {**dataclasses.asdict(params), "labels": sorted(set(units.labels.tolist()))},
        "clock_offset_s": float(clock.offset_s),
        "clock_drift": float(clock.drift),
        "sync_residual_s": float(clock.residual_s),
        "sync_n_matched": int(clock.n_matched),
        "neural_path": units.source,
        "neural_format": units.fmt,
        "session": session,
        "qc": {
            "n_spikes": [int(v) for v in qc["n_spikes"]],
            "n_outside_recording": [int(v) for v in qc["n_outside"]],
        },
    }
    return ds


MIN_OVERLAP = 0.1  # below this fraction of syllable windows among the spikes, the clock is wrong
MAX_SPAN_RATIO = 100  # spikes spanning 100x longer than the syllables: probably not in seconds (ms?)


def _check_overlap(units: Units, first_s: np.ndarray, last_s: np.ndarray, clock: ClockFit) -> None:
    """InputError when fewer than MIN_OVERLAP of the syllable windows overlap the span of the spikes;
    a warning when the spikes span MAX_SPAN_RATIO times longer than the syllables (times in ms?)."""
    if first_s.size == 0 or units.spike_times_s.size == 0:
        return
    start, end = float(units.spike_times_s.min()), float(units.spike_times_s.max())
    inside = (last_s >= start) & (first_s <= end)
    if inside.mean() < MIN_OVERLAP:
        raise InputError(
            units.source,
            f"{int((~inside).sum())} of {first_s.size} syllable windows fall outside the spikes' time span "
            f"[{start:g}, {end:g}] s on the neural clock (syllables at {first_s.min():g}..{last_s.max():g} s "
            f"with clock offset {clock.offset_s:g} s, drift {clock.drift:g}); check the clock offset or "
            "sync pulses, and that spike times are in seconds",
        )
    syllables_s = float(last_s.max() - first_s.min())
    if end - start > MAX_SPAN_RATIO * syllables_s > 0:
        warnings.warn(
            f"{units.source}: the spikes span {end - start:g} s, {(end - start) / syllables_s:.0f}x the syllables' "
            f"{syllables_s:g} s; if spike times are not in seconds (ms?), the counts are wrong",
            stacklevel=3,
        )


def _warn_outside_recording(units: Units, first_s: np.ndarray, last_s: np.ndarray) -> None:
    if units.recording_s is None or first_s.size == 0:
        return
    start, end = units.recording_s
    outside = (first_s < start) | (last_s > end)
    if outside.any():
        warnings.warn(
            f"{units.source}: {int(outside.sum())} of {first_s.size} syllable windows reach outside the "
            f"recording [{start:g}, {end:g}] s (neural clock); their counts there are 0",
            stacklevel=3,
        )
