"""Atomic writes and NetCDF I/O shared by every stage (the data contract is in docs/data_contract.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

import xarray as xr

from mmneuro.errors import InputError

NETCDF_ENGINE = "h5netcdf"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or a kill mid-write leaves no file at ``path`` that looks complete. The temp name is
    fixed (``.<name>.tmp``), so what a killed run left there is replaced by the next write and a
    successful rerun leaves no hidden files behind. Works for files and for directories (the caller
    creates what it needs at the temp path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    _remove(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to ``path`` atomically (h5netcdf engine). Dict/list attrs are stored as JSON."""
    ds = ds.copy()
    ds.attrs = stored_attrs(ds.attrs)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine=NETCDF_ENGINE)
    return Path(path)


def read_netcdf(path: str | Path, variables: list[str] | None = None) -> xr.Dataset:
    """Load a stage's NetCDF file (only ``variables`` and the coordinates, if given) into memory; a
    missing or unreadable file is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with xr.open_dataset(path, engine=NETCDF_ENGINE) as ds:
            return (ds if variables is None else ds[list(variables)]).load()
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable NetCDF file ({err})") from err


def json_attr(ds: xr.Dataset, key: str):
    """Decode an attribute written by :func:`write_netcdf` from a dict or list."""
    return json.loads(ds.attrs[key])


def stored_attrs(attrs: dict) -> dict:
    """``attrs`` as :func:`write_netcdf` stores them (and :func:`read_netcdf` gives them back)."""
    return {k: _attr_value(v) for k, v in attrs.items()}


def _attr_value(value):
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    if value is None:
        return ""
    return value
