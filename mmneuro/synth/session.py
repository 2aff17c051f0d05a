"""One synthetic session (WAV + Phy + NWB + TTL sync + ground truth) and a demo set of sessions."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from mmneuro.errors import InputError
from mmneuro.io import atomic_path
from mmneuro.synth.audio import write_audio
from mmneuro.synth.config import SynthConfig
from mmneuro.synth.formats import write_nwb, write_phy
from mmneuro.synth.syllables import sample_syllables
from mmneuro.synth.units import make_clusters, make_units, simulate_spikes

SESSION_ID = re.compile(r"[A-Za-z0-9_.-]+")
MIN_DURATION_S = 5.0
TSV_COLUMNS = ("session", "audio", "neural", "neural_format", "sync_audio", "sync_neural",
               "clock_offset_s", "clock_drift")


def generate_session(out_dir, session: str, *, seed: int, duration_s: float = 180.0,
                     config: SynthConfig | None = None) -> Path:
    """Write ``out_dir/<session>/`` (layout in docs/data_contract.md, "Demo data") and return it.

    ``duration_s`` is the audio length (s). Same ``seed`` and config give byte-identical files.
    The session directory appears complete or not at all (built in a temp dir, then renamed);
    an existing one is replaced.
    """
    config = config or SynthConfig()
    _check_args(session, duration_s, seed)
    streams = dict(zip(("syllables", "clock", "sync", "spikes", "phy", "audio"),
                       np.random.SeedSequence([seed, 1]).spawn(6)))
    rng = {k: np.random.default_rng(v) for k, v in streams.items() if k != "audio"}

    syllables = sample_syllables(rng["syllables"], duration_s, config)
    clock = {"offset_s": float(rng["clock"].uniform(*config.clock_offset_s)),
             "drift": float(rng["clock"].uniform(*config.clock_drift))}

    def to_neural(t_audio_s):
        return clock["offset_s"] + (1 + clock["drift"]) * np.asarray(t_audio_s)

    units = make_units(config)
    factor = {"name": "slow_drift", "units": [u["unit"] for u in units if u["drift_gain"] > 0],
              "period_s": config.slow_drift_period_s,
              "phase_rad": float(rng["clock"].uniform(0, 2 * np.pi)), "clock": "neural"}
    t_end = float(to_neural(duration_s)) + config.neural_tail_s
    spikes = {}
    for u in units:
        t = simulate_spikes(rng["spikes"], u, syllables, to_neural, t_end, factor, config.response_tail_s)
        # Quantised to the neural sample clock, so Phy (samples) and NWB (seconds) hold the same times.
        spikes[u["unit"]] = np.round(t * config.neural_rate_hz) / config.neural_rate_hz
    sync_audio, sync_neural, sync_truth = _sync_pulses(rng["sync"], duration_s, to_neural, config)

    truth = {
        "session": session, "seed": int(seed), "duration_s": float(duration_s),
        "audio": {"path": "audio.wav", "sample_rate_hz": config.audio_rate_hz},
        "neural": {"phy_dir": "phy", "nwb_path": "units.nwb", "sample_rate_hz": config.neural_rate_hz,
                   "duration_s": t_end},
        "clock": clock,
        "sync": sync_truth,
        "clusters": make_clusters(config),
        "units": units,
        "syllables": syllables,
        "neural_only_factor": factor,
        "response_tail_s": config.response_tail_s,
        "config": config.to_dict(),
    }
    out = Path(out_dir) / session
    with atomic_path(out) as tmp, _progress(session, duration_s) as bar:
        tmp.mkdir()
        write_audio(tmp / "audio.wav", syllables, duration_s, streams["audio"], config, bar.update)
        write_phy(tmp / "phy", spikes, units, config, rng["phy"])
        write_nwb(tmp / "units.nwb", spikes, units, session, seed)
        np.save(tmp / "sync_audio_s.npy", sync_audio)
        np.save(tmp / "sync_neural_s.npy", sync_neural)
        (tmp / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        _remove_old(out)
    return out


def generate_demo(out_dir, *, n_sessions: int = 3, duration_s: float = 180.0, seed: int = 0,
                  config: SynthConfig | None = None) -> Path:
    """Generate sessions ``demo01``, ``demo02``, ... under ``out_dir`` and return ``out_dir/sessions.tsv``.

    Session seeds are derived from ``seed``; the TSV leaves the clock columns empty so the pipeline
    must fit offset and drift from the sync pulses.
    """
    if not isinstance(n_sessions, int) or n_sessions < 1:
        raise InputError("n_sessions", f"must be a positive integer, got {n_sessions!r}")
    _check_args("demo01", duration_s, seed)
    out_dir = Path(out_dir)
    seeds = np.random.SeedSequence(seed).generate_state(n_sessions)
    rows = ["\t".join(TSV_COLUMNS)]
    for i, session_seed in enumerate(seeds, start=1):
        name = f"demo{i:02d}"
        generate_session(out_dir, name, seed=int(session_seed), duration_s=duration_s, config=config)
        rows.append("\t".join([name, f"{name}/audio.wav", f"{name}/phy", "phy", f"{name}/sync_audio_s.npy",
                               f"{name}/sync_neural_s.npy", "", ""]))
    tsv = out_dir / "sessions.tsv"
    with atomic_path(tsv) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    return tsv


def load_ground_truth(session_dir) -> dict:
    """Read ``session_dir/ground_truth.json`` (an InputError if it is missing or not valid JSON)."""
    path = Path(session_dir) / "ground_truth.json"
    if not path.is_file():
        raise InputError(path, "ground truth file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err})") from err


def _sync_pulses(rng: np.random.Generator, duration_s: float, to_neural, config: SynthConfig):
    """TTL pulses at irregular intervals, timestamped by both clocks with independent jitter;
    a few pulses are missing from one train (which one is drawn)."""
    lo, hi = config.sync_interval_s
    n_max = int(duration_s / lo) + 2
    t = 0.1 + np.cumsum(rng.uniform(lo, hi, n_max))
    t = t[t < duration_s - 0.1]
    audio = t + rng.normal(0, config.sync_jitter_s, len(t))
    neural = to_neural(t) + rng.normal(0, config.sync_jitter_s, len(t))
    n_drop = int(round(config.sync_drop_fraction * len(t)))
    dropped = np.sort(rng.choice(len(t), n_drop, replace=False))
    dropped_in = str(rng.choice(["audio", "neural"]))
    keep = np.setdiff1d(np.arange(len(t)), dropped)
    if dropped_in == "audio":
        audio = audio[keep]
    else:
        neural = neural[keep]
    truth = {"n_pulses": int(len(t)), "dropped_in": dropped_in, "dropped_indices": dropped.tolist(),
             "jitter_s": config.sync_jitter_s}
    return audio, neural, truth


def _check_args(session: str, duration_s: float, seed: int) -> None:
    if not isinstance(session, str) or not SESSION_ID.fullmatch(session):
        raise InputError("session", f"must match [A-Za-z0-9_.-]+, got {session!r}")
    if not duration_s >= MIN_DURATION_S:
        raise InputError("duration_s", f"must be at least {MIN_DURATION_S} s, got {duration_s!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError("seed", f"must be a non-negative integer, got {seed!r}")


def _remove_old(out: Path) -> None:
    """Delete an existing session dir just before the new one is renamed onto its path."""
    if out.exists():
        trash = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.replace(out, trash)
        shutil.rmtree(trash)


class _progress:
    """A tqdm bar on stderr counting seconds of audio written (the slow step)."""

    def __init__(self, session: str, duration_s: float):
        self.args = dict(total=duration_s, desc=f"synth {session}", unit="s", file=sys.stderr, leave=False)

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(**self.args)
        return self.bar

    def __exit__(self, *exc):
        self.bar.close()
