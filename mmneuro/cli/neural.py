"""`mmneuro neural PATH --format ... --syllables ... --out counts.nc [--set key=value ...]`: bin units around syllables."""

from __future__ import annotations

import argparse

from mmneuro.cli import add_set_argument
from mmneuro.formats import NEURAL_FORMATS

# --set keys: the BinParams fields and labels (their defaults: mmneuro.neural.stage / BinParams)
KEYS = ("labels", "pre_s", "post_s", "bin_s", "latency_s", "warp_bins")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="Phy folder, NWB file, spike table (CSV/TSV/Parquet/NPZ) or a sorting SpikeInterface reads")
    parser.add_argument("--format", required=True, choices=NEURAL_FORMATS, dest="fmt")
    parser.add_argument("--syllables", required=True, help="syllables.nc (audio stage) or CSV with onset_s, offset_s")
    parser.add_argument("--out", required=True, help="counts.nc to write")
    parser.add_argument("--session", default=None, help="session id (default: from the syllable table)")
    parser.add_argument("--workers", type=int, default=1, help="threads counting units side by side (same counts)")
    add_set_argument(parser, KEYS)
    clock = parser.add_argument_group("clock: t_neural = offset_s + (1 + drift) * t_audio")
    clock.add_argument("--offset-s", type=float, default=0.0)
    clock.add_argument("--drift", type=float, default=0.0)
    clock.add_argument("--sync-audio", default=None, help=".npy of sync-pulse times (s) on the audio clock")
    clock.add_argument("--sync-neural", default=None, help=".npy of the same pulses (s) on the neural clock")
    short = parser.add_argument_group("shortcuts for --set (defaults: docs/neural.md)")
    short.add_argument("--labels", default=None, help="comma-separated unit labels to keep (default: good)")
    short.add_argument("--pre-s", type=float, default=None, help="window start before onset (s)")
    short.add_argument("--post-s", type=float, default=None, help="window end after onset (s)")
    short.add_argument("--bin-s", type=float, default=None, help="bin width (s)")
    short.add_argument("--latency-s", type=float, default=None, help="added to offset for total counts (s)")
    short.add_argument("--warp-bins", type=int, default=None, help="time-warped bins per syllable (0 = off)")


def main(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from mmneuro.cli import stage_values
    from mmneuro.config import Session
    from mmneuro.errors import InputError, check_session_id
    from mmneuro.io import write_netcdf
    from mmneuro.neural.binning import BinParams
    from mmneuro.neural.qc import qc_summary
    from mmneuro.neural.stage import DEFAULT_LABELS, counts_qc, neural_params, session_counts
    from mmneuro.neural.sync import ClockFit
    from mmneuro.neural.syllables import read_syllables

    # Everything is read and checked before anything is written: bad input leaves no output.
    defaults = {"labels": DEFAULT_LABELS, **dataclasses.asdict(BinParams())}
    params = stage_values(args, defaults, shortcuts=KEYS)
    neural_params(params, where="--labels")
    if args.session is not None:
        check_session_id(args.session, "--session")
    if args.sync_audio is None:
        ClockFit(args.offset_s, args.drift).check("--offset-s/--drift")
    if (args.sync_audio is None) != (args.sync_neural is None):
        raise InputError("--sync-audio/--sync-neural", "give both pulse files or neither")
    syllables = read_syllables(args.syllables, session=args.session)
    sid = args.session or (str(syllables["session"].iloc[0]) if len(syllables) else "")
    if not sid:
        raise InputError(args.syllables, "the syllable table names no session; give --session")
    session = Session(sid, neural=Path(args.path), neural_format=args.fmt,
                      sync_audio=args.sync_audio and Path(args.sync_audio),
                      sync_neural=args.sync_neural and Path(args.sync_neural),
                      clock_offset_s=args.offset_s, clock_drift=args.drift)
    counts = session_counts(session, syllables, params, workers=args.workers)
    write_netcdf(counts, Path(args.out))
    sync = (f", sync residual {counts.attrs['sync_residual_s'] * 1e3:.3f} ms over {counts.attrs['sync_n_matched']} "
            "pulses" if counts.attrs["sync_n_matched"] else "")
    print(
        f"neural QC {counts.attrs['session'] or args.path}: {counts.sizes['syllable']} syllables, "
        f"{qc_summary(counts_qc(counts))}; clock offset {counts.attrs['clock_offset_s']:.6f} s, "
        f"drift {counts.attrs['clock_drift'] * 1e6:.2f} ppm{sync}"
    )
    return 0
