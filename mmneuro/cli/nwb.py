"""`mmneuro nwb DATASET --counts counts.nc --units PATH --format FMT --model DIR ... --out SESSION.nwb`:
one session's syllables, syllable-aligned counts and latent means as an NWB file (mmneuro.nwb)."""

from __future__ import annotations

import argparse

from mmneuro.cli import add_set_argument
from mmneuro.formats import NEURAL_FORMATS

# --set keys: the NwbMetadata fields (mmneuro.nwb), used for a new file only
KEYS = ("session_start_time", "experimenter", "lab", "institution", "subject_id", "species", "sex", "date_of_birth")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset.nc (the syllables, counts and split the models saw)")
    parser.add_argument("--counts", required=True, help="the session's counts.nc (neural stage): session, clock, units")
    parser.add_argument("--units", required=True, help="the session's spike-sorted units (an NWB file is copied, never changed)")
    parser.add_argument("--format", required=True, choices=NEURAL_FORMATS, dest="fmt")
    parser.add_argument("--model", nargs="+", action="extend", default=[], metavar="DIR",
                        help="trained model folder(s); column latent_mean_<folder name> each")
    parser.add_argument("--out", required=True, help="the .nwb file to write")
    add_set_argument(parser, KEYS)


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from mmneuro.cli import stage_values
    from mmneuro.nwb import NwbMetadata, export_session

    metadata = NwbMetadata(**stage_values(args, dataclasses.asdict(NwbMetadata())))
    out = export_session(args.dataset, args.counts, args.model, args.units, args.fmt, args.out, metadata)
    print(f"wrote {out}")
    return 0
