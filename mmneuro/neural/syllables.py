"""The syllable table the neural stage aligns to: ids, session, onset and offset (audio clock, s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mmneuro.errors import InputError

COLUMNS = ("syllable", "session", "onset_s", "offset_s")


def read_syllables(path: str | Path, session: str | None = None) -> pd.DataFrame:
    """Load ``syllables.nc`` (audio stage) or a CSV with ``onset_s, offset_s`` (+ ``syllable``)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise InputError(path, "file not found")
        try:
            table = pd.read_csv(path)
        except Exception as err:
            raise InputError(path, f"cannot read the syllable CSV ({type(err).__name__}: {err})") from err
        return syllable_table(table, session=session, where=path)
    from mmneuro.io import read_netcdf

    ds = read_netcdf(path)
    return syllable_table(ds, session=session, where=path)


def syllable_table(syllables: xr.Dataset | pd.DataFrame, *, session: str | None = None, where="syllables") -> pd.DataFrame:
    """Normalise a syllable Dataset/DataFrame to columns syllable, session, onset_s, offset_s.

    Ids absent from the input are assigned as ``"<session>-<index:05d>"`` in onset order (the audio
    stage's rule), so they join with syllables.nc. Rows keep the input order otherwise.
    """
    if isinstance(syllables, xr.Dataset):
        ds_session = syllables.attrs.get("session") or None
        table = pd.DataFrame(
            {c: syllables[c].values for c in COLUMNS if c in syllables.variables and syllables[c].dims == ("syllable",)}
        )
        if "syllable" not in table and "syllable" in syllables.dims and syllables.sizes["syllable"] == 0:
            table["syllable"] = np.array([], dtype=str)
        session = session or ds_session
    else:
        table = pd.DataFrame(syllables).reset_index(drop=True)
    missing = [c for c in ("onset_s", "offset_s") if c not in table]
    if missing:
        raise InputError(where, f"missing syllable column(s) {', '.join(missing)}; found: {', '.join(map(str, table.columns))}")
    onset = pd.to_numeric(table["onset_s"], errors="coerce").to_numpy(np.float64)
    offset = pd.to_numeric(table["offset_s"], errors="coerce").to_numpy(np.float64)
    if not (np.all(np.isfinite(onset)) and np.all(np.isfinite(offset))):
        raise InputError(where, "onset_s/offset_s must be finite numbers")
    if np.any(offset < onset):
        bad = int(np.flatnonzero(offset < onset)[0])
        raise InputError(where, f"syllable {bad}: offset_s {offset[bad]} is before onset_s {onset[bad]}")

    if "session" in table and table["session"].nunique() > 1:
        raise InputError(where, f"more than one session in the syllable table: {sorted(table['session'].unique())}")
    if session is None and "session" in table and len(table):
        session = str(table["session"].iloc[0])
    if "syllable" in table:
        ids = table["syllable"].astype(str).to_numpy()
    else:
        if session is None:
            raise InputError(where, "no syllable ids and no session to name them by (give a session)")
        order = np.argsort(onset, kind="stable")
        onset, offset = onset[order], offset[order]
        ids = np.array([f"{session}-{i:05d}" for i in range(onset.size)], dtype=str)
    if np.unique(ids).size != ids.size:
        raise InputError(where, "syllable ids are not unique")
    return pd.DataFrame(
        {"syllable": ids, "session": np.full(ids.size, session or "", dtype=object), "onset_s": onset, "offset_s": offset}
    )
