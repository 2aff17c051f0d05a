"""`mmneuro dataset --session ID SYL CNT ... --out dataset.nc [--set key=value ...]`: one dataset with a split."""

from __future__ import annotations

from mmneuro.cli import add_set_argument

KEYS = ("val_fraction", "test_fraction", "seed")  # defaults: mmneuro.dataset.DEFAULTS


def configure_parser(parser) -> None:
    parser.add_argument("--session", nargs=3, action="append", required=True,
                        metavar=("ID", "SYLLABLES_NC", "COUNTS_NC"),
                        help="one session: its id, syllables.nc and counts.nc ('-' for a missing modality); repeat per session")
    parser.add_argument("--own-units", action="append", default=[], metavar="ID",
                        help="session ID was spike-sorted on its own: keep its units apart from other "
                             "sessions' (sessions table: units = own); repeat per session")
    parser.add_argument("--out", required=True, help="output dataset.nc")
    add_set_argument(parser, KEYS)
    short = parser.add_argument_group("shortcuts for --set (defaults: val and test 0.15, seed 0)")
    short.add_argument("--val-fraction", type=float, default=None)
    short.add_argument("--test-fraction", type=float, default=None)
    short.add_argument("--seed", type=int, default=None)


def main(args) -> int:
    from mmneuro.cli import stage_values
    from mmneuro.dataset import DEFAULTS, assemble
    from mmneuro.io import write_netcdf

    split = stage_values(args, DEFAULTS, shortcuts=KEYS)
    sessions = [(sid, None if syl == "-" else syl, None if cnt == "-" else cnt) for sid, syl, cnt in args.session]
    ds = assemble(sessions, **split, units={sid: "own" for sid in args.own_units} or None)
    write_netcdf(ds, args.out)
    split = ds["split"].to_series().value_counts()
    print(f"{args.out}: {ds.sizes['syllable']} syllables from {len(sessions)} sessions "
          f"(train {split.get('train', 0)}, val {split.get('val', 0)}, test {split.get('test', 0)})")
    return 0
