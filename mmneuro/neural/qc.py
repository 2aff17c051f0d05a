"""Unit quality summary: firing rate, ISI violations, spikes outside the recording."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmneuro.neural.readers import Units

REFRACTORY_S = 0.0015  # ISIs shorter than this are physiologically implausible for one neuron
VIOLATION_WARN = 0.01  # units above 1 % violations are flagged in the summary (Hill et al. 2011 use ~1-2 %)


def unit_qc(units: Units, refractory_s: float = REFRACTORY_S) -> pd.DataFrame:
    """Per-unit QC table indexed by unit id.

    Columns: n_spikes, firing_rate_hz (spikes / recording span), isi_violation_fraction
    (fraction of inter-spike intervals < refractory_s; NaN with fewer than 2 spikes),
    n_outside (spikes dropped by the reader for lying outside the recording).
    """
    n = units.n_spikes
    start, end = units.extent_s
    span = end - start
    rate = n / span if span > 0 else np.full(len(units), np.nan)

    # All ISIs at once on the flat array; the steps that cross from one unit to the next are masked.
    # Violations are rare: only theirs (not every spike's) unit is looked up.
    short = np.diff(units.spike_times_s) < refractory_s
    boundaries = units.unit_ptr[1:-1] - 1
    short[boundaries[(boundaries >= 0) & (boundaries < short.size)]] = False
    unit_of_step = np.searchsorted(units.unit_ptr, np.flatnonzero(short), side="right") - 1
    violations = np.bincount(unit_of_step, minlength=len(units))
    intervals = np.maximum(n - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(intervals > 0, violations / intervals, np.nan)
    return pd.DataFrame(
        {"n_spikes": n, "firing_rate_hz": rate, "isi_violation_fraction": fraction, "n_outside": units.n_outside},
        index=pd.Index(units.unit_ids, name="unit"),
    )


def qc_summary(qc: pd.DataFrame) -> str:
    """One line for the log: units, spikes, median rate, flagged units, dropped spikes."""
    flagged = int((qc["isi_violation_fraction"] > VIOLATION_WARN).sum())
    silent = int((qc["n_spikes"] == 0).sum())
    return (
        f"{len(qc)} units, {int(qc['n_spikes'].sum())} spikes, "
        f"median rate {np.nanmedian(qc['firing_rate_hz']) if len(qc) else float('nan'):.2f} Hz, "
        f"{flagged} with >{VIOLATION_WARN:.0%} ISI violations (<{REFRACTORY_S * 1e3:g} ms), "
        f"{silent} without spikes, {int(qc['n_outside'].sum())} spikes outside the recording dropped"
    )
