"""Writers for the lab formats the pipeline reads: a Phy/Kilosort folder and an NWB Units table."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import numpy as np

from mmneuro.synth.config import SynthConfig

# Fixed so that the same seed gives byte-identical NWB files.
SESSION_START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def write_phy(phy_dir: Path, spike_times_s: dict[int, np.ndarray], units: list[dict], config: SynthConfig,
              rng: np.random.Generator) -> None:
    """Write a Kilosort-style Phy folder that phylib's ``TemplateModel`` loads without raw data.

    ``spike_times_s`` maps unit id -> spike times (s, neural clock). One template per unit with
    template index == cluster id, so ``spike_templates`` equals ``spike_clusters``.
    """
    phy_dir.mkdir(parents=True)
    ids = np.concatenate([np.full(len(spike_times_s[u["unit"]]), u["unit"], np.int32) for u in units])
    samples = np.concatenate([np.round(spike_times_s[u["unit"]] * config.neural_rate_hz).astype(np.int64)
                              for u in units])
    order = np.lexsort((ids, samples))  # time order, ties broken by cluster id
    samples, ids = samples[order], ids[order]
    n_units = max(u["unit"] for u in units) + 1
    templates = _templates(units, n_units, config)
    peak = np.abs(templates).max(axis=(1, 2))
    # Kilosort's amplitudes: per-spike template scaling, scattered around the unit's own size.
    amplitudes = peak[ids] * rng.lognormal(0.0, 0.1, len(ids))
    arrays = {
        "spike_times": samples,
        "spike_clusters": ids,
        "spike_templates": ids.copy(),
        "amplitudes": amplitudes,
        "templates": templates,
        "channel_map": np.arange(config.n_channels, dtype=np.int32),
        "channel_positions": _channel_positions(config),
        "whitening_mat": np.eye(config.n_channels),
        "whitening_mat_inv": np.eye(config.n_channels),
    }
    for name, arr in arrays.items():
        np.save(phy_dir / f"{name}.npy", arr)
    rows = [f"{u['unit']}\t{u['label']}" for u in units]
    (phy_dir / "cluster_group.tsv").write_text("cluster_id\tgroup\n" + "\n".join(rows) + "\n")
    (phy_dir / "params.py").write_text(
        "dat_path = ''\n"  # no raw data: phylib treats a blank path as "no recording file"
        f"n_channels_dat = {config.n_channels}\n"
        "dtype = 'int16'\n"
        "offset = 0\n"
        f"sample_rate = {float(config.neural_rate_hz)}\n"
        "hp_filtered = True\n"
    )


def _channel_positions(config: SynthConfig) -> np.ndarray:
    """(n_channels, 2) positions in um: two staggered columns, like a Neuropixels-style shank."""
    i = np.arange(config.n_channels)
    return np.stack([16.0 * (i % 2), config.channel_pitch_um * (i // 2)], axis=1)


def _templates(units: list[dict], n_units: int, config: SynthConfig) -> np.ndarray:
    """(unit, sample, channel) float32 biphasic waveforms decaying with distance from each unit's channel."""
    t = np.arange(config.template_samples) / config.neural_rate_hz * 1e3  # ms
    t0 = t[config.template_samples // 2]
    wave = -np.exp(-0.5 * ((t - t0) / 0.15) ** 2) + 0.4 * np.exp(-0.5 * ((t - t0 - 0.5) / 0.35) ** 2)
    pos = _channel_positions(config)
    out = np.zeros((n_units, config.template_samples, config.n_channels), np.float32)
    for u in units:
        dist = np.linalg.norm(pos - pos[u["channel"]], axis=1)
        out[u["unit"]] = np.outer(wave, np.exp(-0.5 * (dist / 30.0) ** 2))
    return out


def write_nwb(path: Path, spike_times_s: dict[int, np.ndarray], units: list[dict], session: str,
              seed: int) -> None:
    """Write an NWB file whose Units table holds the same units (spike times in s, neural clock),
    with columns ``cluster_id`` and ``quality`` (the Phy label)."""
    from pynwb import NWBFile, NWBHDF5IO

    # hdmf gives every container a random UUID; drawing them from a seeded generator instead makes
    # the file byte-identical for the same session and seed.
    ids = random.Random(f"{session}-{seed}")
    with mock.patch("hdmf.container.uuid4", lambda: uuid.UUID(int=ids.getrandbits(128), version=4)):
        nwb = NWBFile(session_description=f"mmneuro synthetic session {session}",
                      identifier=f"mmneuro-synth-{session}-seed{seed}", session_start_time=SESSION_START,
                      file_create_date=[SESSION_START])
        nwb.add_unit_column("cluster_id", "spike sorter cluster id (Phy)")
        nwb.add_unit_column("quality", "Phy label: good, mua or noise")
        for u in units:
            nwb.add_unit(spike_times=spike_times_s[u["unit"]], cluster_id=u["unit"], quality=u["label"],
                         id=u["unit"])
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
