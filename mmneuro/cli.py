"""`mmneuro <stage>`: one subcommand per pipeline stage.

Each stage module defines ``configure_parser(parser)`` (cheap: no heavy imports) and
``main(args) -> int``; the registry below maps subcommand names to those modules so that
``mmneuro --help`` stays fast and every stage owns its own arguments.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mmneuro.errors import InputError

# name -> (module, one-line help). Order is the pipeline's order.
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mmneuro.synth_command", "generate demo sessions (WAV + Phy + NWB) with planted ground truth"),
    "audio": ("mmneuro.audio.command", "detect USV syllables in WAV files and compute syllable spectrograms"),
    "neural": ("mmneuro.neural.command", "bin spike-sorted units in windows aligned to each syllable"),
    "dataset": ("mmneuro.dataset_command", "assemble per-session NetCDF files into one dataset with a split"),
    "train": ("mmneuro.train_command", "train a multimodal VAE (MVAE, MMVAE, MoPoE) on a dataset"),
    "analyse": ("mmneuro.analysis.command",
                "analyse a trained model: latents vs neurons, clusters, bands, cross-prediction, synergy"),
    "report": ("mmneuro.report.command", "one self-contained HTML report over all analysed models"),
    "apply": ("mmneuro.apply_command",
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
