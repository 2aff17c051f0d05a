"""`mmneuro consistency DATASET.nc MODEL_DIR MODEL_DIR [...] --out DIR`: consistency across seeds (cheap imports)."""

from __future__ import annotations

from mmneuro.cli import add_set_argument


def configure_parser(parser) -> None:
    parser.add_argument("dataset", help="dataset.nc from `mmneuro dataset`")
    parser.add_argument("model_dirs", nargs="+", metavar="model_dir",
                        help="two or more trained model folders, e.g. one per seed")
    parser.add_argument("--out", required=True, help="folder to write, e.g. results/consistency/mvae")
    add_set_argument(parser, ["the analysis settings of docs/analysis.md, e.g. split=test conditioning=audio"])
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def main(args) -> int:
    from mmneuro.analysis.consistency import consistency_folder
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.cli import parse_assignments

    settings = AnalysisSettings().replace(parse_assignments(args.set))
    out = consistency_folder(args.model_dirs, args.dataset, args.out, settings=settings)
    if not args.quiet:
        import json

        mean = json.loads((out / "summary.json").read_text())["mean"]
        print(f"{out}: mean R² {mean['r2']:.3f} (uniform {mean['r2_uniform']:.3f}), unit-cluster ARI "
              f"{mean['ari']:.3f}, unit-similarity r {mean['similarity_r']:.3f}")
    return 0
