"""`mmneuro apply MODEL_DIR [WAV | ID=WAV ...] [--sessions TSV] --out DIR [--set key=value ...]`: a trained
model on new sessions.

Audio-only sessions are given as WAV paths (the session id is the file stem, or ``ID=WAV``);
sessions with neural data (or neural only) come from a sessions table in the workflow's format; a
row with ``units: own`` has units the model never saw (its read-in and read-out are fitted).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmneuro.cli import add_set_argument

SHORTCUTS = ("n_samples", "seed", "flag_percentile", "session_flag_fraction")  # --set keys with an option too
READIN = ("readin_epochs", "readin_patience", "readin_lr", "readin_val_fraction", "readin_test_fraction")
KEYS = (*SHORTCUTS, "batch_size", *READIN)  # mmneuro.apply.ApplySettings declares their defaults


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path, help="trained model folder (config.json, weights.pt)")
    parser.add_argument("sessions", nargs="*", metavar="WAV|ID=WAV",
                        help="audio-only sessions: a WAV file (id = its file stem) or ID=WAV")
    parser.add_argument("--sessions", dest="table", type=Path, default=None, metavar="TSV",
                        help="sessions table (columns session, audio, neural, neural_format, sync_audio, sync_neural, "
                             "clock_offset_s, clock_drift, units; as config/sessions.example.tsv): complete, audio-only or "
                             "neural-only sessions; units `own`: units sorted on their own, fitted a read-in and "
                             "read-out (readin_* keys of --set)")
    parser.add_argument("--syllables", action="append", default=[], metavar="ID=CSV",
                        help="syllable times (CSV onset_s, offset_s, audio clock) for a session: required for "
                             "neural-only sessions, used instead of segmentation otherwise (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="output folder: OUT/<session>/applied.nc, report.html")
    parser.add_argument("--reference", type=Path, default=None,
                        help="the dataset.nc the model was trained on (default: MODEL_DIR/../../dataset.nc)")
    parser.add_argument("--config", type=Path, default=None,
                        help="workflow config whose audio/neural parameters are compared with the model's")
    add_set_argument(parser, KEYS)
    short = parser.add_argument_group("shortcuts for --set (defaults: docs/apply.md)")
    short.add_argument("--n-samples", type=int, default=None, help="posterior samples per syllable")
    short.add_argument("--seed", type=int, default=None)
    short.add_argument("--flag-percentile", type=float, default=None,
                       help="flag syllables above this percentile of the training distribution")
    short.add_argument("--session-flag-fraction", type=float, default=None,
                       help="flag a session with more flagged syllables than this fraction")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from mmneuro.apply import ApplySettings, apply_model
    from mmneuro.apply.pipeline import APPLIED_FILE, summary_line
    from mmneuro.apply.sessions import check_syllable_source, current_params, sessions_from_table
    from mmneuro.cli import stage_values
    from mmneuro.config import Session, with_syllables
    from mmneuro.errors import InputError
    from mmneuro.io import read_netcdf

    syllables = {}
    for item in args.syllables:
        sid, sep, csv = item.partition("=")
        if not sep or not sid or not csv:
            raise InputError("--syllables", f"expected ID=CSV, got {item!r}")
        syllables[sid] = Path(csv)
    given = [Session.audio_only(spec) for spec in args.sessions]
    ids = {s.session for s in given}
    sessions = with_syllables(given, {k: v for k, v in syllables.items() if k in ids}, "--syllables")
    rest = {k: v for k, v in syllables.items() if k not in ids}
    if args.table is not None:
        sessions += sessions_from_table(args.table, rest)
    elif rest:
        raise InputError("--syllables", f"no session named {sorted(rest)} among the given sessions")
    for session in sessions:
        check_syllable_source(session)
    current = None
    if args.config is not None:
        from mmneuro.config import load_config

        current = current_params(load_config(args.config))
    settings = ApplySettings(**stage_values(args, dataclasses.asdict(ApplySettings()), shortcuts=SHORTCUTS))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        folders = apply_model(args.model_dir, sessions, args.out, reference=args.reference, settings=settings,
                              current=current, progress=not args.quiet)
    for folder in folders:
        print(summary_line(read_netcdf(folder / APPLIED_FILE)) + f" -> {folder}")
    return 0
