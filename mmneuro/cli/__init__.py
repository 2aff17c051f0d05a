"""`mmneuro <stage>`: one subcommand per pipeline stage.

Each stage has a module here, ``mmneuro.cli.<stage>``, defining ``configure_parser(parser)``
(cheap: no heavy imports) and ``main(args) -> int``, a thin wrapper around the stage's library
function; the registry below maps subcommand names to those modules so that ``mmneuro --help``
stays fast. Every stage takes its parameters the same way, ``--set key=value`` (repeatable;
values are YAML, so the workflow's JSON values read as they were written).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from mmneuro.errors import InputError

# name -> (module, one-line help). Order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mmneuro.cli.synth", "generate demo sessions (WAV + Phy + NWB) with planted ground truth"),
    "audio": ("mmneuro.cli.audio", "detect USV syllables in WAV files and compute syllable spectrograms"),
    "neural": ("mmneuro.cli.neural", "bin spike-sorted units in windows aligned to each syllable"),
    "dataset": ("mmneuro.cli.dataset", "assemble per-session NetCDF files into one dataset with a split"),
    "train": ("mmneuro.cli.train", "train a multimodal VAE (MVAE, MMVAE, MoPoE) on a dataset"),
    "analyse": ("mmneuro.cli.analyse",
                "analyse a trained model: latents vs neurons, clusters, bands, cross-prediction, synergy"),
    "consistency": ("mmneuro.cli.consistency", "consistency across seeds: R² between embeddings, ARI of unit clusters"),
    "score": ("mmneuro.cli.score", "score a model's analysis against the planted truth of demo sessions"),
    "oracle": ("mmneuro.cli.oracle", "fit the planted-feature oracle of demo sessions once per dataset (for score)"),
    "nwb": ("mmneuro.cli.nwb", "export a session's syllables, aligned counts and latent means as an NWB file"),
    "report": ("mmneuro.cli.report", "one self-contained HTML report over all analysed models"),
    "apply": ("mmneuro.cli.apply",
              "apply a trained model to new sessions (audio-only too): embeddings, predictions, OOD check"),
}


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` (every stage's ``--set``) into a dict of strings."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("--set", f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def add_set_argument(parser: argparse.ArgumentParser, keys) -> None:
    """The ``--set KEY=VALUE ...`` option every stage has (repeatable; ``keys``: the allowed keys)."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", dest="set",
                        help=f"set a parameter (repeatable; the value is read as YAML); keys: {', '.join(keys)}")


def yaml_value(raw: str):
    """A ``--set`` value read as YAML; exponent-only floats such as ``3e-3`` (strings in YAML 1.1) as numbers."""
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]  # YAML's own message spans lines
        raise InputError("--set", f"cannot read the value {raw!r} ({problem})") from None
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", value.strip()):
        return float(value)
    return value


def stage_values(args: argparse.Namespace, defaults: dict, shortcuts: tuple[str, ...] = ()) -> dict:
    """The parameters a stage was given: ``--set`` values checked against the keys and value types
    of ``defaults`` (where each default is declared), then the named shortcut options (``--n-samples``
    for n_samples ...) that were given. Only the keys given are returned."""
    values = {}
    for key, raw in parse_assignments(args.set).items():
        if key not in defaults:
            raise InputError("--set", f"unknown key {key!r}; allowed: {', '.join(defaults)}")
        values[key] = _typed(key, yaml_value(raw), defaults[key])
    values |= {k: getattr(args, k) for k in shortcuts if getattr(args, k) is not None}
    return values


def _typed(key: str, value, default):
    """``value`` as the type of ``default`` (an int is a float too; a tuple is a list or a comma-separated str)."""
    if isinstance(default, tuple):
        value = value.split(",") if isinstance(value, str) else value
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v.strip() for v in value if v.strip())
    elif isinstance(default, bool) or default is None:
        if isinstance(value, bool) or default is None:
            return value
    elif isinstance(default, (int, float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(default, float) or float(value).is_integer():
            return type(default)(value)
    elif isinstance(value, type(default)):
        return value
    raise InputError("--set", f"{key}: {value!r} is not of type {type(default).__name__}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmneuro",
        description="Learn a shared latent space of mouse USVs and neural activity.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<stage>", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.configure_parser(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except InputError as err:
        print(f"mmneuro {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
