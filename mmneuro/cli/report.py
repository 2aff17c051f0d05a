"""`mmneuro report RESULTS_DIR --out report.html`: one self-contained HTML over all analysed models."""

from __future__ import annotations


def configure_parser(parser) -> None:
    parser.add_argument("results_dir", help="the workflow's results folder (holds analysis/<model>/, dataset.nc)")
    parser.add_argument("--out", required=True, help="HTML file to write")


def main(args) -> int:
    from mmneuro.report.html import write_report

    path = write_report(args.results_dir, args.out)
    print(f"report: {path}")
    return 0
