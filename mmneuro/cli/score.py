"""`mmneuro score MODEL_DIR DATASET.nc ANALYSIS_DIR --truth SESSION_DIR ... --out DIR`: score one model's
analysis against the planted truth of demo sessions (cheap imports)."""

from __future__ import annotations

from mmneuro.cli import add_set_argument


def configure_parser(parser) -> None:
    parser.add_argument("model_dir", help="trained model folder (config.json, weights.pt)")
    parser.add_argument("dataset", help="dataset.nc the model was analysed on")
    parser.add_argument("analysis_dir", help="the model's analysis folder from `mmneuro analyse`")
    parser.add_argument("--truth", nargs="+", required=True, metavar="SESSION_DIR",
                        help="demo session folders with ground_truth.json")
    parser.add_argument("--out", required=True, help="scores folder to write, e.g. results/scores/mvae")
    parser.add_argument("--oracle", metavar="DIR", help="the dataset's planted-feature oracle from `mmneuro oracle` "
                                                         "(default: fitted here, the same numbers)")
    parser.add_argument("--session", metavar="ID", help="score ANALYSIS_DIR/sessions/ID, one session's analysis of a "
                                                        "model trained on sessions sorted on their own")
    add_set_argument(parser, ["the analysis settings of docs/analysis.md (default: the analysis' own, "
                              "from its summary.json), e.g. match_tolerance_s=0.01"])
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def main(args) -> int:
    from mmneuro.cli import parse_assignments
    from mmneuro.synth.scoring import score_folder

    analysis = f"{args.analysis_dir}/sessions/{args.session}" if args.session else args.analysis_dir
    score_folder(args.model_dir, args.dataset, analysis, args.truth, args.out,
                 overrides=parse_assignments(args.set), oracle_dir=args.oracle, session=args.session,
                 progress=not args.quiet)
    return 0
