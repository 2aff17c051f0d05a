"""`mmneuro synth OUT`: generate demo sessions with planted ground truth and a sessions table."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (OUT/<session>/ and OUT/sessions.tsv)")
    parser.add_argument("--sessions", type=int, default=3, help="number of sessions demo01, demo02, ... (default 3)")
    parser.add_argument("--duration-s", type=float, default=180.0, help="audio length per session in s (default 180)")
    parser.add_argument("--seed", type=int, default=0, help="demo seed; session seeds derive from it (default 0)")


def main(args: argparse.Namespace) -> int:
    from mmneuro.synth import generate_demo, load_ground_truth

    tsv = generate_demo(args.out, n_sessions=args.sessions, duration_s=args.duration_s, seed=args.seed)
    for i in range(1, args.sessions + 1):
        truth = load_ground_truth(tsv.parent / f"demo{i:02d}")
        print(f"{truth['session']}: {len(truth['syllables'])} syllables, {len(truth['units'])} units, "
              f"{truth['duration_s']:g} s")
    print(f"sessions table: {tsv}")
    return 0
