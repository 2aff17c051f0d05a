"""`mmneuro neural PATH --format ... --syllables ... --out counts.nc`: bin units around syllables."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="Phy folder, NWB file or spike table (CSV/TSV/Parquet/NPZ)")
    parser.add_argument("--format", required=True, choices=("phy", "nwb", "table"), dest="fmt")
    parser.add_argument("--syllables", required=True, help="syllables.nc (audio stage) or CSV with onset_s, offset_s")
    parser.add_argument("--out", required=True, help="counts.nc to write")
    parser.add_argument("--labels", default="good", help="comma-separated unit labels to keep (default: good)")
    parser.add_argument("--session", default=None, help="session id (default: from the syllable table)")
    clock = parser.add_argument_group("clock: t_neural = offset_s + (1 + drift) * t_audio")
    clock.add_argument("--offset-s", type=float, default=0.0)
    clock.add_argument("--drift", type=float, default=0.0)
    clock.add_argument("--sync-audio", default=None, help=".npy of sync-pulse times (s) on the audio clock")
    clock.add_argument("--sync-neural", default=None, help=".npy of the same pulses (s) on the neural clock")
    window = parser.add_argument_group("bins (s)")
    window.add_argument("--pre-s", type=float, default=0.05, help="window start before onset")
    window.add_argument("--post-s", type=float, default=0.2, help="window end after onset")
    window.add_argument("--bin-s", type=float, default=0.01, help="bin width")
    window.add_argument("--latency-s", type=float, default=0.02, help="added to offset for total counts")
    window.add_argument("--warp-bins", type=int, default=0, help="time-warped bins per syllable (0 = off)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmneuro.errors import InputError, check_session_id
    from mmneuro.io import write_netcdf
    from mmneuro.neural.binning import BinParams, bin_counts
    from mmneuro.neural.qc import qc_summary, unit_qc
    from mmneuro.neural.readers import read_units
    from mmneuro.neural.sync import ClockFit, fit_clock
    from mmneuro.neural.syllables import read_syllables

    # Everything is read and checked before anything is written: bad input leaves no output.
    params = BinParams(args.pre_s, args.post_s, args.bin_s, args.latency_s, args.warp_bins)
    if args.session is not None:
        check_session_id(args.session, "--session")
    if args.sync_audio is None:
        ClockFit(args.offset_s, args.drift).check("--offset-s/--drift")
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    if not labels:
        raise InputError("--labels", "no labels given")
    syllables = read_syllables(args.syllables, session=args.session)
    units = read_units(args.path, args.fmt, labels=labels)
    if (args.sync_audio is None) != (args.sync_neural is None):
        raise InputError("--sync-audio/--sync-neural", "give both pulse files or neither")
    if args.sync_audio is not None:
        clock = fit_clock(_load_pulses(args.sync_audio), _load_pulses(args.sync_neural), names=(args.sync_audio, args.sync_neural))
    else:
        clock = ClockFit(args.offset_s, args.drift)
    counts = bin_counts(units, syllables, params, clock, session=args.session)
    write_netcdf(counts, Path(args.out))
    sync = f", sync residual {clock.residual_s * 1e3:.3f} ms over {clock.n_matched} pulses" if clock.n_matched else ""
    print(
        f"neural QC {counts.attrs['session'] or args.path}: {counts.sizes['syllable']} syllables, "
        f"{qc_summary(unit_qc(units))}; clock offset {clock.offset_s:.6f} s, drift {clock.drift * 1e6:.2f} ppm{sync}"
    )
    return 0


def _load_pulses(path: str):
    import numpy as np

    from mmneuro.errors import InputError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable .npy array of pulse times ({err})") from err
