"""`mmneuro synth OUT [--set key=value ...]`: generate demo sessions with planted ground truth and a sessions table."""

from __future__ import annotations

import argparse

from mmneuro.cli import add_set_argument


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT", help="output folder (OUT/<session>/ and OUT/sessions.tsv)")
    # defaults: mmneuro.synth.generate_demo's (3 sessions of 180 s, seed 0)
    parser.add_argument("--sessions", type=int, default=None, dest="n_sessions",
                        help="number of sessions demo01, demo02, ... (default 3)")
    parser.add_argument("--duration-s", type=float, default=None, help="audio length per session in s (default 180)")
    parser.add_argument("--seed", type=int, default=None, help="demo seed; session seeds derive from it (default 0)")
    add_set_argument(parser, ["the fields of mmneuro.synth.SynthConfig, applied over --config or --family"])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--config", metavar="FILE",
                       help="YAML/JSON file of SynthConfig keys to change (default: the demo's configuration)")
    which.add_argument("--family", type=int, metavar="SEED",
                       help="the planted configuration mmneuro.synth.draw_config(SEED) of the benchmark family")


def main(args: argparse.Namespace) -> int:
    from mmneuro.cli import parse_assignments, yaml_value
    from mmneuro.config import load_sessions
    from mmneuro.synth import SynthConfig, draw_config, generate_demo, load_ground_truth

    config = draw_config(args.family) if args.family is not None else _read_config(args.config)
    changes = {key: yaml_value(raw) for key, raw in parse_assignments(args.set).items()}
    if changes:
        config = SynthConfig.from_dict({**(config or SynthConfig()).to_dict(), **changes}, where="--set")
    given = {k: getattr(args, k) for k in ("n_sessions", "duration_s", "seed") if getattr(args, k) is not None}
    tsv = generate_demo(args.out, config=config, **given)
    for session in load_sessions(tsv):
        truth = load_ground_truth(session.audio.parent)
        print(f"{truth['session']}: {len(truth['syllables'])} syllables, {len(truth['units'])} units, "
              f"{truth['duration_s']:g} s")
    print(f"sessions table: {tsv}")
    return 0


def _read_config(path):
    """The SynthConfig of a YAML/JSON file (None without one); a clear InputError if it is unreadable."""
    if path is None:
        return None
    from pathlib import Path

    import yaml

    from mmneuro.errors import InputError
    from mmneuro.synth import SynthConfig

    try:
        values = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(path, f"cannot read the synth config ({err})") from err
    if not isinstance(values, dict):
        raise InputError(path, "must be a mapping of SynthConfig keys to values")
    return SynthConfig.from_dict(values, where=str(path))
