"""`mmneuro dataset`: assemble per-session NetCDF files into results/dataset.nc."""

from __future__ import annotations


def configure_parser(parser) -> None:
    parser.add_argument("--session", nargs=3, action="append", required=True,
                        metavar=("ID", "SYLLABLES_NC", "COUNTS_NC"),
                        help="one session: its id, syllables.nc and counts.nc ('-' for a missing modality); repeat per session")
    parser.add_argument("--out", required=True, help="output dataset.nc")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)


def main(args) -> int:
    from mmneuro.dataset import assemble
    from mmneuro.io import write_netcdf

    sessions = [(sid, None if syl == "-" else syl, None if cnt == "-" else cnt) for sid, syl, cnt in args.session]
    ds = assemble(sessions, val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed)
    write_netcdf(ds, args.out)
    split = ds["split"].to_series().value_counts()
    print(f"{args.out}: {ds.sizes['syllable']} syllables from {len(sessions)} sessions "
          f"(train {split.get('train', 0)}, val {split.get('val', 0)}, test {split.get('test', 0)})")
    return 0
