"""Run one `mmneuro` subcommand in-process, letting InputError propagate (the CLI would print it)."""

import argparse
import importlib

from mmneuro.cli import COMMANDS


def run_command(name: str, argv: list[str]) -> int:
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"mmneuro {name}")
    module.configure_parser(parser)
    return module.main(parser.parse_args(argv))
