"""`mmneuro oracle DATASET.nc --truth SESSION_DIR ... --out DIR`: the planted-feature oracle of demo
sessions, the part of scoring that depends on no model, once per dataset (cheap imports)."""

from __future__ import annotations

from mmneuro.cli import add_set_argument


def configure_parser(parser) -> None:
    parser.add_argument("dataset", help="dataset.nc from `mmneuro dataset`")
    parser.add_argument("--truth", nargs="+", required=True, metavar="SESSION_DIR",
                        help="demo session folders with ground_truth.json")
    parser.add_argument("--out", required=True, help="oracle folder to write, e.g. results/oracle "
                                                     "(read by `mmneuro score --oracle`)")
    add_set_argument(parser, ["the analysis settings it depends on (split, seed, match_tolerance_s; others are "
                              "accepted and unused), as given to `mmneuro analyse`"])
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def main(args) -> int:
    from mmneuro.cli import parse_assignments
    from mmneuro.synth.scoring import oracle_folder

    oracle_folder(args.dataset, args.truth, args.out, overrides=parse_assignments(args.set), progress=not args.quiet)
    return 0
