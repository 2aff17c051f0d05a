"""Neural stage: spike-sorted units -> spike counts aligned to each syllable (counts.nc).

Three lines from a notebook::

    units = read_units("phy/", "phy")
    clock = fit_clock(np.load("sync_audio_s.npy"), np.load("sync_neural_s.npy"))
    counts = bin_counts(units, read_syllables("syllables.nc"), BinParams(), clock)
"""

from mmneuro.neural.binning import BinParams, bin_counts, bin_edges, count_uniform_bins
from mmneuro.neural.qc import qc_summary, unit_qc
from mmneuro.neural.readers import Units, read_units
from mmneuro.neural.sync import ClockFit, fit_clock
from mmneuro.neural.syllables import read_syllables, syllable_table

__all__ = [
    "BinParams",
    "ClockFit",
    "Units",
    "bin_counts",
    "bin_edges",
    "count_uniform_bins",
    "fit_clock",
    "qc_summary",
    "read_syllables",
    "read_units",
    "syllable_table",
    "unit_qc",
]
