"""`mmneuro train DATASET.nc --model mvae|mmvae|mopoe|vae --out DIR [--config FILE] [--set k=v ...]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmneuro.cli import add_set_argument, parse_assignments, yaml_value
from mmneuro.errors import InputError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset.nc from `mmneuro dataset`")
    parser.add_argument("--model", choices=["mvae", "mmvae", "mopoe", "vae"], default=None,
                        help="model kind (overrides `kind` in --config; default mvae)")
    parser.add_argument("--out", type=Path, required=True, help="output directory (config.json, weights.pt, …)")
    parser.add_argument("--config", type=Path, help="YAML or JSON file of config keys (see docs/models.md)")
    add_set_argument(parser, ["the config keys of docs/models.md; dotted keys nest: audio.likelihood=laplace"])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    parser.add_argument("--restart", action="store_true",
                        help="if --out holds a checkpoint of another config or dataset, delete it and train "
                             "from scratch (default: refuse; a matching checkpoint is always resumed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def read_config(path: Path | None) -> dict:
    """A YAML/JSON mapping of config keys; an unreadable file or a non-mapping is an InputError."""
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        data = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as err:
        raise InputError(path, f"cannot parse config ({err})") from err
    if not isinstance(data, dict):
        raise InputError(path, "config must be a mapping of keys to values")
    return data


def apply_overrides(config: dict, assignments: list[str]) -> dict:
    """Apply ``key=value`` strings (values parsed as YAML; dotted keys set nested dicts)."""
    for key, raw in parse_assignments(assignments).items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError("--set", f"{part!r} is not a mapping in {key!r}")
        node[leaf] = yaml_value(raw)
    return config


def main(args: argparse.Namespace) -> int:
    from mmneuro.config import check_train_settings
    from mmneuro.train import NonFiniteLossError, fit

    config = apply_overrides(read_config(args.config), args.set)
    check_train_settings(config, " + ".join([str(args.config)] * bool(args.config) + ["--set"] * bool(args.set))
                         or "config")
    if args.model:
        config["kind"] = args.model
    if args.device:
        config["device"] = args.device
    try:
        fit(args.dataset, config, args.out, progress=not args.quiet,
            on_mismatch="restart" if args.restart else "error")
    except NonFiniteLossError as err:
        print(f"mmneuro train: training stopped: {err}", file=sys.stderr)
        return 1
    print(args.out)
    return 0
