"""`mmneuro audio WAV --session ID --out PATH.nc [--preset P] [--set key=value ...]`: syllables.nc plus
the syllable table as CSV."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmneuro.audio.presets import DEFAULT_PRESET, PARAMETERS, PRESETS
from mmneuro.cli import add_set_argument, parse_assignments
from mmneuro.errors import InputError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("wav", type=Path, help="WAV recording (int or float samples, any rate >= 2x max_freq_hz)")
    parser.add_argument("--session", required=True, help="session id ([A-Za-z0-9_.-]+)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output NetCDF (.nc); the syllable table goes beside it as .csv")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help=f"parameter preset (default {DEFAULT_PRESET}); see docs/audio.md")
    add_set_argument(parser, PARAMETERS)
    parser.add_argument("--annotations", type=Path, default=None,
                        help="CSV with onset_s, offset_s (and optionally syllable): use it instead of segmenting")
    parser.add_argument("--channel", type=int, default=None,
                        help="channel of a multi-channel WAV (0-based); same as --set channel=N")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def main(args: argparse.Namespace) -> int:
    from mmneuro.audio.netcdf_stream import write_syllables
    from mmneuro.io import atomic_path
    from mmneuro.stages import audio_params

    if args.out.suffix != ".nc":
        raise InputError(args.out, "output must end in .nc (the syllable table is written beside it as .csv)")
    params = audio_params({"preset": args.preset, "set": parse_assignments(args.set), "channel": args.channel})

    started = time.perf_counter()
    written = write_syllables(args.wav, args.session, args.out, params, annotations=args.annotations,
                              progress=not args.no_progress)
    with atomic_path(args.out.with_suffix(".csv")) as tmp:
        written.table.to_csv(tmp, index=False)
    elapsed = time.perf_counter() - started

    duration_s = written.audio_duration_s
    print(f"audio {args.session}: {len(written.table)} syllables in {duration_s / 3600:.3f} h of audio, "
          f"{elapsed:.1f} s ({duration_s / max(elapsed, 1e-9):.0f}x real time) -> {args.out}")
    return 0
