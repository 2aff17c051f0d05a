"""Spike-sorted units from Phy/Kilosort folders, NWB files, plain tables or anything SpikeInterface reads, in one in-memory form.

Every reader ends in :func:`build_units`, so sorting, the checks on bad input (unsorted spikes,
units without spikes, spikes outside the recording) and label selection behave the same whatever
the format.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmneuro.errors import InputError
from mmneuro.formats import NEURAL_FORMATS

UNSORTED = "unsorted"  # label of a unit whose source carries no curation label (Phy's own term)


@dataclass(frozen=True)
class Units:
    """Spike trains of a set of units, neural clock.

    unit_ids: (n_units,) int64 cluster ids, ascending.
    labels: (n_units,) str, sorter/curation label (good, mua, noise, unsorted).
    spike_times_s: (n_spikes,) float64, grouped by unit and sorted within each unit;
        unit i's spikes are ``spike_times_s[unit_ptr[i]:unit_ptr[i + 1]]`` (CSR layout, so
        per-unit access is a slice and nothing loops over spikes).
    unit_ptr: (n_units + 1,) int64 offsets into ``spike_times_s``.
    recording_s: (start, end) of the recording in seconds, or None when the source does not say.
    n_outside: (n_units,) int64, spikes dropped because they lay outside the recording.
    metadata: per-unit extra columns from the source, indexed by unit id.
    """

    unit_ids: np.ndarray
    labels: np.ndarray
    spike_times_s: np.ndarray
    unit_ptr: np.ndarray
    recording_s: tuple[float, float] | None
    n_outside: np.ndarray
    source: str
    fmt: str
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __len__(self) -> int:
        return len(self.unit_ids)

    def spikes(self, i: int) -> np.ndarray:
        """Sorted spike times (s) of the i-th unit (position, not cluster id)."""
        return self.spike_times_s[self.unit_ptr[i] : self.unit_ptr[i + 1]]

    @property
    def n_spikes(self) -> np.ndarray:
        """(n_units,) spike count of each unit."""
        return np.diff(self.unit_ptr)

    @property
    def extent_s(self) -> tuple[float, float]:
        """Recording span (s): the declared one, else 0 to the last spike."""
        if self.recording_s is not None:
            return self.recording_s
        if self.spike_times_s.size == 0:
            return (0.0, 0.0)
        return (min(0.0, float(self.spike_times_s.min())), float(self.spike_times_s.max()))

    def select(self, keep: np.ndarray) -> "Units":
        """The units where the boolean mask ``keep`` (n_units,) is true."""
        keep = np.asarray(keep, dtype=bool)
        parts = [self.spikes(i) for i in np.flatnonzero(keep)]
        counts = np.array([p.size for p in parts], dtype=np.int64)
        return Units(
            unit_ids=self.unit_ids[keep],
            labels=self.labels[keep],
            spike_times_s=np.concatenate(parts) if parts else np.empty(0),
            unit_ptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            recording_s=self.recording_s,
            n_outside=self.n_outside[keep],
            source=self.source,
            fmt=self.fmt,
            metadata=self.metadata.loc[self.unit_ids[keep]] if len(self.metadata) else self.metadata,
        )


def read_units(path: str | Path, fmt: str, labels: tuple[str, ...] | None = ("good",)) -> Units:
    """Read spike-sorted units and keep those whose label is in ``labels`` (None: keep all).

    fmt: "phy" (Phy/Kilosort folder), "nwb" (NWB file with a Units table) or
    "table" (CSV/TSV/Parquet/NPZ with columns ``unit``, ``time_s`` and optionally ``label``) or
    "spikeinterface" (any sorting SpikeInterface reads: :func:`read_spikeinterface`).
    A source without any labels keeps all its units (labelled "unsorted"), with a warning.
    """
    readers = {"phy": read_phy, "nwb": read_nwb, "table": read_table, "spikeinterface": read_spikeinterface}
    if fmt not in readers:
        raise InputError(path, f"unknown neural format {fmt!r} (expected one of {', '.join(NEURAL_FORMATS)})")
    units = readers[fmt](Path(path))
    return select_labels(units, labels)


def select_labels(units: Units, labels: tuple[str, ...] | None) -> Units:
    """Keep the units whose label is in ``labels``; an empty selection is an InputError."""
    if labels is None:
        return units
    present = sorted(set(units.labels.tolist()))
    if present == [UNSORTED] and UNSORTED not in labels:
        warnings.warn(f"{units.source}: no unit labels in the source; keeping all {len(units)} units", stacklevel=2)
        return units
    kept = units.select(np.isin(units.labels, list(labels)))
    if len(kept) == 0:
        raise InputError(
            units.source, f"no units labelled {', '.join(labels)} (labels present: {', '.join(present) or 'none'})"
        )
    return kept


def build_units(
    source: Path,
    fmt: str,
    spike_unit: np.ndarray,
    spike_times_s: np.ndarray,
    *,
    unit_ids: np.ndarray | None = None,
    labels: dict[int, str] | None = None,
    recording_s: tuple[float, float] | None = None,
    metadata: pd.DataFrame | None = None,
) -> Units:
    """Group flat per-spike arrays into :class:`Units`, checking them on the way.

    spike_unit: (n_spikes,) cluster id of each spike; spike_times_s: (n_spikes,) times in s.
    unit_ids: all units to include (adds units without spikes); default: those with spikes.
    labels: cluster id -> label; missing ids get "unsorted".
    recording_s: (start, end) in s; spikes outside it are dropped with a warning.
    """
    spike_unit = np.asarray(spike_unit).ravel()
    spike_times_s = np.asarray(spike_times_s, dtype=np.float64).ravel()
    if spike_unit.shape != spike_times_s.shape:
        raise InputError(source, f"{spike_times_s.size} spike times but {spike_unit.size} unit ids")
    if not np.all(np.isfinite(spike_times_s)):
        raise InputError(source, "spike times contain NaN or infinite values")
    if not np.issubdtype(spike_unit.dtype, np.integer):
        if not np.all(np.isfinite(spike_unit)) or np.any(spike_unit != np.round(spike_unit)):
            raise InputError(source, "unit ids must be integers")
    spike_unit = spike_unit.astype(np.int64)
    ids = np.unique(spike_unit) if unit_ids is None else np.unique(np.concatenate([unit_ids, spike_unit]))

    # Stable sort by unit keeps each unit's spikes in file order; check that order is by time.
    order = np.argsort(spike_unit, kind="stable")
    su, st = spike_unit[order], spike_times_s[order]
    backwards = (np.diff(st) < 0) & (su[1:] == su[:-1])
    if backwards.any():
        warnings.warn(f"{source}: spike times are not sorted ({int(backwards.sum())} steps back); sorting them", stacklevel=3)
        order = np.lexsort((st, su))
        su, st = su[order], st[order]

    n_outside = np.zeros(ids.size, dtype=np.int64)
    if recording_s is not None:
        outside = (st < recording_s[0]) | (st > recording_s[1])
        if outside.any():
            warnings.warn(
                f"{source}: {int(outside.sum())} spikes outside the recording "
                f"[{recording_s[0]:g}, {recording_s[1]:g}] s; dropping them",
                stacklevel=3,
            )
            n_outside = np.bincount(np.searchsorted(ids, su[outside]), minlength=ids.size).astype(np.int64)
            su, st = su[~outside], st[~outside]

    ptr = np.searchsorted(su, ids, side="left")
    ptr = np.concatenate([ptr, [su.size]]).astype(np.int64)
    empty = ids[np.diff(ptr) == 0]
    if empty.size:
        warnings.warn(f"{source}: units without spikes: {', '.join(map(str, empty[:20]))}", stacklevel=3)
    labels = labels or {}
    return Units(
        unit_ids=ids,
        labels=np.array([labels.get(int(u), UNSORTED) for u in ids], dtype=str),
        spike_times_s=st,
        unit_ptr=ptr,
        recording_s=recording_s,
        n_outside=n_outside,
        source=str(source),
        fmt=fmt,
        metadata=metadata.reindex(ids) if metadata is not None else pd.DataFrame(index=ids),
    )


# --- Phy / Kilosort -------------------------------------------------------------------------------

# Label files in increasing precedence: curated groups (Phy) override Kilosort's automatic labels.
PHY_LABEL_FILES = (("cluster_KSLabel.tsv", "KSLabel"), ("cluster_info.tsv", "group"), ("cluster_group.tsv", "group"))


def read_params_py(path: Path) -> dict:
    """Literal assignments of a Phy ``params.py``, parsed without executing it.

    Each ``name = <literal>`` is evaluated with ``ast.literal_eval``; anything else is ignored.
    """
    if not path.is_file():
        raise InputError(path, "missing (a Phy folder needs params.py with sample_rate)")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as err:
        raise InputError(path, f"cannot parse params.py ({err})") from err
    params = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a literal (e.g. a function call): never evaluated
    return params


def read_phy(folder: Path) -> Units:
    """A Phy/Kilosort output folder: spike_times.npy (samples) / sample_rate, cluster ids, labels."""
    if not folder.is_dir():
        raise InputError(folder, "not a Phy folder (directory not found)")
    params = read_params_py(folder / "params.py")
    rate = params.get("sample_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
        raise InputError(folder / "params.py", f"sample_rate must be a positive number (got {rate!r})")
    samples = _load_npy(folder / "spike_times.npy")
    clusters_path = folder / "spike_clusters.npy"
    if not clusters_path.is_file():
        clusters_path = folder / "spike_templates.npy"  # uncurated Kilosort output: template = cluster
        if not clusters_path.is_file():
            raise InputError(folder, "neither spike_clusters.npy nor spike_templates.npy found")
    clusters = _load_npy(clusters_path).ravel()
    if clusters.size != samples.size:
        raise InputError(
            clusters_path, f"{clusters.size} entries but spike_times.npy has {samples.size}: the files do not match"
        )
    labels, listed = _phy_labels(folder)
    recording = _phy_recording_s(folder, params, float(rate))
    # Divide in float64: exact for sample indices below 2**53.
    times = samples.ravel().astype(np.float64) / float(rate)
    return build_units(folder, "phy", clusters, times, unit_ids=listed, labels=labels, recording_s=recording)


def _phy_labels(folder: Path) -> tuple[dict[int, str], np.ndarray]:
    labels: dict[int, str] = {}
    listed: list[np.ndarray] = []
    for name, column in PHY_LABEL_FILES:
        path = folder / name
        if not path.is_file():
            continue
        table = pd.read_csv(path, sep="\t")
        id_col = "cluster_id" if "cluster_id" in table.columns else "id"
        if id_col not in table.columns or column not in table.columns:
            raise InputError(
                path, f"expected columns cluster_id and {column}, found: {', '.join(map(str, table.columns))}"
            )
        table = table.dropna(subset=[column])
        labels.update(zip(table[id_col].astype(np.int64).tolist(), table[column].astype(str).str.strip().tolist()))
        listed.append(table[id_col].to_numpy(np.int64))
    return labels, (np.concatenate(listed) if listed else np.empty(0, np.int64))


def _phy_recording_s(folder: Path, params: dict, rate: float) -> tuple[float, float] | None:
    """Recording span from the raw data file's size, when params.py points to a readable one."""
    dat = params.get("dat_path")
    if isinstance(dat, (list, tuple)):
        dat = dat[0] if len(dat) == 1 else None
    n_channels = params.get("n_channels_dat")
    if not isinstance(dat, str) or not isinstance(n_channels, int) or n_channels <= 0:
        return None
    path = Path(dat) if Path(dat).is_absolute() else folder / dat
    if not path.is_file():
        return None
    try:
        itemsize = np.dtype(params.get("dtype", "int16")).itemsize
    except TypeError:
        return None
    n_samples = (path.stat().st_size - int(params.get("offset", 0))) // (itemsize * n_channels)
    return (0.0, n_samples / rate)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array ({err})") from err


# --- NWB ------------------------------------------------------------------------------------------

NWB_LABEL_COLUMNS = ("quality", "group", "label", "KSLabel")


def read_nwb(path: Path) -> Units:
    """The Units table of an NWB file: spike_times (s), obs_intervals if present, ids, quality."""
    if not path.is_file():
        raise InputError(path, "file not found")
    from pynwb import NWBHDF5IO

    try:
        with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
            nwb = io.read()
            table = nwb.units
            if table is None or len(table) == 0:
                raise InputError(path, "NWB file has no Units table (no spike-sorted units)")
            return _units_from_nwb_table(path, table)
    except InputError:
        raise
    except Exception as err:  # h5py/hdmf raise many types for a file that is not NWB
        raise InputError(path, f"not a readable NWB file ({type(err).__name__}: {err})") from err


def nwb_unit_ids(table) -> np.ndarray:
    """The unit ids of an NWB Units table, one per row: its ``cluster_id`` column (the sorter's ids)
    if present, else the table's own ids."""
    return np.asarray(table["cluster_id"].data[:] if "cluster_id" in table.colnames else table.id.data[:], dtype=np.int64)


def _units_from_nwb_table(path: Path, table) -> Units:
    columns = set(table.colnames)
    if "spike_times" not in columns:
        raise InputError(path, "Units table has no spike_times column")
    ids = nwb_unit_ids(table)
    if np.unique(ids).size != ids.size:
        raise InputError(path, "unit ids in the Units table are not unique")
    # Ragged columns are a flat data array plus cumulative end indices: expand without a loop.
    ends = np.asarray(table["spike_times"].data[:], dtype=np.int64)
    times = np.asarray(table["spike_times"].target.data[:], dtype=np.float64)
    spike_unit = np.repeat(ids, np.diff(np.concatenate([[0], ends])))
    label_col = next((c for c in NWB_LABEL_COLUMNS if c in columns), None)
    labels = None
    if label_col is not None:
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in table[label_col].data[:]]
        labels = dict(zip(ids.tolist(), values))
    recording = None
    if "obs_intervals" in columns:
        intervals = np.asarray(table["obs_intervals"].target.data[:], dtype=np.float64).reshape(-1, 2)
        if intervals.size:
            recording = (float(intervals[:, 0].min()), float(intervals[:, 1].max()))
    skip = {"spike_times", "obs_intervals", "cluster_id", label_col, "electrodes", "waveforms", "waveform_mean", "waveform_sd"}
    scalar_cols = {c: table[c].data[:] for c in table.colnames if c not in skip and not hasattr(table[c], "target")}
    metadata = pd.DataFrame(scalar_cols, index=ids) if scalar_cols else None
    return build_units(path, "nwb", spike_unit, times, unit_ids=ids, labels=labels, recording_s=recording, metadata=metadata)


# --- plain tables ---------------------------------------------------------------------------------


def read_table(path: Path) -> Units:
    """CSV/TSV/Parquet/NPZ with one row per spike: ``unit`` (int), ``time_s`` (s), optional ``label``.

    An NPZ may also hold a scalar ``duration_s`` (recording 0..duration_s).
    """
    if not path.is_file():
        raise InputError(path, "file not found")
    suffix = path.suffix.lower()
    recording = None
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            if "duration_s" in arrays:
                recording = (0.0, float(arrays.pop("duration_s")))
            frame = pd.DataFrame({k: v.ravel() for k, v in arrays.items()})
        else:
            raise InputError(path, f"unknown table type {suffix!r} (expected .csv, .tsv, .parquet or .npz)")
    except InputError:
        raise
    except Exception as err:
        raise InputError(path, f"cannot read the spike table ({type(err).__name__}: {err})") from err
    missing = [c for c in ("unit", "time_s") if c not in frame.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; found: {', '.join(map(str, frame.columns))}")
    if frame.empty:
        raise InputError(path, "the spike table has no rows (no spikes)")
    for column in ("unit", "time_s"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(np.float64)))
        if bad.size:
            raise InputError(path, f"column {column}: {bad.size} value(s) are not finite numbers, first in data row "
                                   f"{bad[0] + 1} ({frame[column].iloc[bad[0]]!r})")
        frame[column] = values
    labels = None
    if "label" in frame.columns:
        per_unit = frame.groupby("unit")["label"].nunique()
        if (per_unit > 1).any():
            raise InputError(path, f"unit {per_unit.index[per_unit > 1][0]} has more than one label")
        first = frame.drop_duplicates("unit")
        labels = dict(zip(first["unit"].astype(np.int64).tolist(), first["label"].astype(str).tolist()))
    return build_units(path, "table", frame["unit"].to_numpy(), frame["time_s"].to_numpy(), labels=labels, recording_s=recording)


# --- SpikeInterface -------------------------------------------------------------------------------

SI_LABEL_PROPERTIES = ("quality", "group", "KSLabel")  # curation label, in the order they are looked for


def read_spikeinterface(path: Path) -> Units:
    """Any sorting SpikeInterface (optional extra ``mmneuro[spikeinterface]``) reads, as :class:`Units`.

    path: a folder or file SpikeInterface saved (``sorting.save(folder=...)``, .json, .pkl), a
    Phy/Kilosort folder (has params.py) or an NWB file (.nwb). Spike times are SpikeInterface's
    (``return_times=True``: the registered recording's times, else samples / sampling frequency);
    the label is the first of the properties quality, group, KSLabel; other one-value-per-unit
    properties become metadata. One segment only: several segments have no common clock.
    """
    if not path.exists():
        raise InputError(path, "not found")
    try:
        import spikeinterface as si
        import spikeinterface.extractors as se
    except ImportError as err:
        raise InputError(path, "neural_format spikeinterface needs SpikeInterface: pip install 'mmneuro[spikeinterface]'") from err
    try:
        if path.is_dir() and (path / "params.py").is_file():
            sorting = se.read_phy(path)
        elif path.suffix.lower() == ".nwb":
            sorting = se.read_nwb_sorting(path)
        else:
            sorting = si.load(path)
    except Exception as err:  # SpikeInterface raises many types for a path it cannot read
        raise InputError(path, f"SpikeInterface cannot read it as a sorting ({type(err).__name__}: {err})") from err
    if not isinstance(sorting, si.BaseSorting):
        raise InputError(path, f"SpikeInterface reads it as a {type(sorting).__name__}, not a sorting")
    if sorting.get_num_segments() != 1:
        raise InputError(path, f"the sorting has {sorting.get_num_segments()} segments; mmneuro reads one")
    try:
        ids = np.array([int(u) for u in sorting.unit_ids], dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(path, f"unit ids must be integers (found e.g. {sorting.unit_ids[:3].tolist()})") from None
    trains = [np.asarray(sorting.get_unit_spike_train(u, return_times=True), dtype=np.float64) for u in sorting.unit_ids]
    props = {k: sorting.get_property(k) for k in sorting.get_property_keys()}
    label_key = next((k for k in SI_LABEL_PROPERTIES if k in props), None)
    labels = dict(zip(ids.tolist(), map(str, props[label_key]))) if label_key else None
    scalar = {k: v for k, v in props.items() if k != label_key and np.ndim(v) == 1}
    recording = (0.0, float(sorting.get_total_duration())) if sorting.has_recording() else None
    return build_units(
        path, "spikeinterface",
        np.repeat(ids, [t.size for t in trains]),
        np.concatenate(trains) if trains else np.empty(0),
        unit_ids=ids, labels=labels, recording_s=recording,
        metadata=pd.DataFrame(scalar, index=ids) if scalar else None,
    )
