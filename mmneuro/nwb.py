"""NWB export of one session: what the pipeline made of it, in the field's file format.

Added to the file: the syllables as a TimeIntervals table ``syllables`` (start/stop on the neural
clock, the syllable features, each model's latent means as a 2-D column ``latent_mean_<model>``) and
the syllable-aligned counts as ndx-binned-spikes' ``BinnedAlignedSpikes`` (units × syllables × bins)
in the processing module ``ecephys``, linked to the rows of the Units table.

An NWB units source is copied (``NWBHDF5IO.export``) with these added, never opened for writing;
any other source gives a new NWBFile holding its units (spike times, neural clock) and these.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import xarray as xr

from mmneuro.errors import InputError
from mmneuro.io import atomic_path, read_netcdf
from mmneuro.neural.sync import ClockFit

INTERVALS = "syllables"
MODULE = "ecephys"
COUNTS = "syllable_aligned_counts"
# per-syllable coordinates of dataset.nc written as interval columns (those present), with descriptions
COLUMNS = {
    "syllable": "syllable id (<session>-<index>)",
    "split": "train / val / test: the split the models were trained and evaluated on",
    "onset_s": "onset on the audio clock (s from the WAV's first sample)",
    "offset_s": "offset on the audio clock (s)",
    "duration_s": "duration (s)",
    "mean_freq_hz": "power-weighted mean frequency (Hz)",
    "peak_freq_hz": "frequency of peak power (Hz)",
    "bandwidth_hz": "frequency range (Hz)",
    "fm_slope_hz_per_s": "frequency modulation slope (Hz/s)",
    "amplitude_db": "peak level above the noise floor (dB)",
}


@dataclasses.dataclass(frozen=True)
class NwbMetadata:
    """Metadata of a new NWB file (a copied NWB source keeps its own). Times are ISO 8601 with a time
    zone (2024-03-01T09:00:00+01:00). ``session_start_time`` None: the units source's modification
    time (UTC); ``subject_id`` None: the session id; ``date_of_birth`` (or an age) is what DANDI and
    nwbinspector ask of a subject."""

    session_start_time: str | None = None
    experimenter: str | None = None
    lab: str | None = None
    institution: str | None = None
    subject_id: str | None = None
    species: str = "Mus musculus"
    sex: str = "U"
    date_of_birth: str | None = None

    def check(self) -> NwbMetadata:
        """This metadata if its times read as ISO 8601 with a time zone, else an InputError naming the key."""
        for key in ("session_start_time", "date_of_birth"):
            _datetime(getattr(self, key), key)
        return self


def export_session(dataset: str | Path, counts: str | Path, models: list[str | Path], units: str | Path,
                   units_format: str, out: str | Path, metadata: NwbMetadata = NwbMetadata()) -> Path:
    """Write ``out`` (.nwb) for the session of ``counts`` (its counts.nc) from ``dataset`` (dataset.nc),
    the trained ``models`` (folders; each column is named after its folder) and the session's
    spike-sorted ``units`` in ``units_format`` (``nwb``: the file is copied and added to)."""
    from mmneuro.estimator import load
    from mmneuro.neural.readers import read_units

    metadata.check()  # bad metadata fails before anything is read, even where a copied source ignores it
    counts_ds = read_netcdf(counts)
    session = str(counts_ds.attrs.get("session", ""))
    ds = read_netcdf(dataset)
    syllables = session_syllables(ds, session, dataset, counts_ds, counts)
    given = ds.sel(syllable=syllables["syllable"].values)  # the models read the union of the sorts' units
    latents = {Path(m).name: load(m).transform(given).values for m in models}
    clock = ClockFit(float(counts_ds.attrs.get("clock_offset_s", 0.0)), float(counts_ds.attrs.get("clock_drift", 0.0)))
    if units_format == "nwb":
        return _append(Path(units), syllables, latents, clock, Path(out))
    nwb = new_file(session, read_units(units, units_format, labels=None), metadata, Path(units))
    add_session(nwb, syllables, latents, clock, units)
    return _write(nwb, Path(out))


def session_syllables(ds: xr.Dataset, session: str, dataset_path, counts: xr.Dataset, counts_path) -> xr.Dataset:
    """The session's syllables of dataset.nc in onset order, checked against its counts.nc."""
    if "session" not in ds.coords or session not in set(ds["session"].values.tolist()):
        raise InputError(dataset_path, f"has no syllables of session {session!r} (the session of {counts_path})")
    sub = ds.isel(syllable=np.flatnonzero(ds["session"].values == session))
    sub = sub.isel(syllable=np.argsort(sub["onset_s"].values, kind="stable"))
    if "unit_session" in sub.coords:  # sessions sorted on their own (docs/multisession.md): its own units
        from mmneuro.analysis.multisession import session_view

        sub = session_view(sub, session)
    if "unit" not in counts.coords:
        raise InputError(counts_path, "no coordinate 'unit': not a counts.nc from `mmneuro neural`")
    if "counts" not in sub or not np.array_equal(sub["unit"].values, counts["unit"].values):
        raise InputError(dataset_path, f"its binned counts of session {session!r} do not have the units of {counts_path}")
    widths = (sub["bin_end_s"] - sub["bin_start_s"]).values
    if not np.allclose(widths, widths[0]):
        raise InputError(dataset_path, "bins of unequal width cannot be stored as BinnedAlignedSpikes")
    return sub


def new_file(session: str, units, metadata: NwbMetadata, source: Path):
    """An NWBFile for ``session`` with ``units`` (mmneuro.neural.readers.Units) as its Units table."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    start = _datetime(metadata.session_start_time, "session_start_time") or datetime.fromtimestamp(
        source.stat().st_mtime, timezone.utc).replace(microsecond=0)
    nwb = NWBFile(
        session_description=f"Mouse ultrasonic vocalizations and spike-sorted units of session {session}, "
                            "with what mmneuro made of them: syllables, syllable-aligned spike counts, latent means",
        identifier=session, session_id=session, session_start_time=start,
        experimenter=metadata.experimenter, lab=metadata.lab, institution=metadata.institution,
        keywords=["ultrasonic vocalizations", "multimodal VAE", "spike counts"],
        subject=Subject(subject_id=metadata.subject_id or session, species=metadata.species, sex=metadata.sex,
                        date_of_birth=_datetime(metadata.date_of_birth, "date_of_birth")),
    )
    nwb.add_unit_column("quality", "sorter / curation label (good, mua, noise, unsorted)")
    for i, unit in enumerate(units.unit_ids):
        nwb.add_unit(id=int(unit), spike_times=units.spikes(i), quality=str(units.labels[i]))
    return nwb


def _datetime(value, key: str) -> datetime | None:
    """``value`` (ISO 8601 str, or a datetime where YAML read one) as an aware datetime; None stays None."""
    if value is None or value == "":
        return None
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError as err:
        raise InputError(key, f"not an ISO 8601 date and time ({err})") from None
    if when.tzinfo is None:
        raise InputError(key, f"{str(value)!r} has no time zone (e.g. 2024-03-01T09:00:00+00:00)")
    return when


def add_session(nwb, syllables: xr.Dataset, latents: dict[str, np.ndarray], clock: ClockFit, source) -> None:
    """Add the syllables table and the syllable-aligned counts to ``nwb`` (whose Units table holds the
    counts' units); a name already taken there is an InputError naming ``source``."""
    from hdmf.common import VectorData
    from ndx_binned_spikes import BinnedAlignedSpikes
    from pynwb.epoch import TimeIntervals

    from mmneuro.neural.readers import nwb_unit_ids

    if INTERVALS in nwb.intervals or (MODULE in nwb.processing and COUNTS in nwb.processing[MODULE].data_interfaces):
        raise InputError(source, f"already holds intervals {INTERVALS!r} or {MODULE}/{COUNTS}")
    start = clock.to_neural(syllables["onset_s"].values)
    columns = {"start_time": ("onset on the neural clock (s)", start),
               "stop_time": ("offset on the neural clock (s)", clock.to_neural(syllables["offset_s"].values))}
    columns |= {k: (text, syllables[k].values.astype(str) if syllables[k].dtype.kind in "OU" else syllables[k].values)
                for k, text in COLUMNS.items() if k in syllables.coords}
    columns |= {f"latent_mean_{name}": (f"posterior mean of the latents of model {name} given audio and spikes", z)
                for name, z in latents.items()}
    nwb.add_time_intervals(TimeIntervals(
        name=INTERVALS, description="USV syllables (mmneuro audio stage), features and latent means",
        columns=[VectorData(name=k, description=text, data=values) for k, (text, values) in columns.items()]))

    rows = {int(u): i for i, u in enumerate(nwb_unit_ids(nwb.units))}
    missing = [int(u) for u in syllables["unit"].values if int(u) not in rows]
    if missing:
        raise InputError(source, f"Units table lacks unit(s) {missing[:5]} of the counts")
    region = nwb.units.create_region(name="units_region", region=[rows[int(u)] for u in syllables["unit"].values],
                                     description="the units of the counts, in the counts' order")
    first, end = float(syllables["bin_start_s"].values[0]), syllables["bin_end_s"].values
    module = nwb.processing[MODULE] if MODULE in nwb.processing else nwb.create_processing_module(
        MODULE, "processed extracellular electrophysiology")
    module.add(BinnedAlignedSpikes(
        name=COUNTS, description="spikes per bin in a window aligned to each syllable's onset (the syllables table's start_time)",
        # rounded to 1e-9 ms: bin edges in s carry float noise (10.000000000000002 ms)
        bin_width_in_ms=round(float(end[0] - first) * 1e3, 9), event_to_bin_offset_in_ms=round(first * 1e3, 9),
        data=syllables["counts"].transpose("unit", "syllable", "bin").values.astype(np.int32),
        event_timestamps=start, units_region=region))


def _append(source: Path, syllables: xr.Dataset, latents: dict, clock: ClockFit, out: Path) -> Path:
    """Export a copy of the NWB file ``source`` with the session's tables added; ``source`` is read only."""
    from pynwb import NWBHDF5IO

    if not source.is_file():
        raise InputError(source, "file not found")
    try:
        with NWBHDF5IO(str(source), "r", load_namespaces=True) as io:
            nwb = io.read()
            if nwb.units is None:
                raise InputError(source, "NWB file has no Units table")
            add_session(nwb, syllables, latents, clock, source)
            nwb.generate_new_id()  # the copy is another file than the source (pynwb's advice for exports)
            with _writer(out) as writer:
                writer.export(src_io=io, nwbfile=nwb)
    except InputError:
        raise
    except Exception as err:  # h5py/hdmf raise many types for a file that is not NWB
        raise InputError(source, f"cannot read or copy this NWB file ({type(err).__name__}: {err})") from err
    return out


def _write(nwb, out: Path) -> Path:
    with _writer(out) as writer:
        writer.write(nwb)
    return out


@contextlib.contextmanager
def _writer(out: Path):
    """An NWBHDF5IO writing to a temporary path, renamed onto ``out`` when it closed without error."""
    from pynwb import NWBHDF5IO

    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not end in '.nwb'")  # the temporary name's suffix
        with NWBHDF5IO(str(tmp), "w") as writer:
            yield writer
