"""`mmneuro analyse MODEL_DIR DATASET.nc --out DIR`: every analysis of one trained model (cheap imports).

Scores against a planted truth are their own stage, `mmneuro score` (mmneuro.cli.score)."""

from __future__ import annotations

from mmneuro.cli import add_set_argument


def configure_parser(parser) -> None:
    parser.add_argument("model_dir", help="trained model folder (config.json, weights.pt, metrics.csv)")
    parser.add_argument("dataset", help="dataset.nc from `mmneuro dataset`")
    parser.add_argument("--out", required=True, help="analysis folder to write, e.g. results/analysis/mvae")
    add_set_argument(parser, ["the analysis settings of docs/analysis.md, e.g. n_clusters=7 n_permutations=500"])
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def main(args) -> int:
    from mmneuro.analysis.pipeline import analyse_folder as analyse
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.cli import parse_assignments

    settings = AnalysisSettings().replace(parse_assignments(args.set))
    analyse(args.model_dir, args.dataset, args.out, settings=settings,
            progress=not args.quiet)
    return 0
