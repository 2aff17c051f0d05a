"""benchmarks/*.py stay runnable against the library: each imports without doing any work, and every
mmneuro name it uses (imports at the top or inside functions, attributes of imported mmneuro modules)
exists. The benchmarks themselves are not run here (minutes each)."""

import argparse
import ast
import importlib
import importlib.util
import types
from pathlib import Path

import pytest

OPTIONAL = {"multivae", "pythae", "vocalpy"}  # bench_models / bench_audio compare against them
HELPERS = {"import_stand_ins", "rounds"}  # imported by the benchmarks, no main()
BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _resolve(path: str):
    """The module or object a dotted mmneuro path names (AttributeError if there is none; an
    ImportError of a module that exists but fails to import propagates)."""
    parts = path.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], 2):
        if not hasattr(obj, part) and isinstance(obj, types.ModuleType):
            try:  # a submodule not imported yet
                importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError as err:
                if err.name != ".".join(parts[:i]):
                    raise
        obj = getattr(obj, part)
    return obj


def missing_mmneuro_names(source: str) -> list[str]:
    """``line: name`` for every mmneuro name ``source`` imports (anywhere in it) or reads as an
    attribute of an imported mmneuro module or object, that the library does not define."""
    tree = ast.parse(source)
    aliases, missing = {}, []

    def check(path: str, line: int) -> bool:
        try:
            _resolve(path)
            return True
        except (ImportError, AttributeError) as err:
            missing.append(f"{line}: {path} ({type(err).__name__}: {err})")
            return False

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "mmneuro":
            for item in node.names:
                if check(f"{node.module}.{item.name}", node.lineno):
                    aliases[item.asname or item.name] = f"{node.module}.{item.name}"
        elif isinstance(node, ast.Import):
            for item in node.names:
                if item.name.split(".")[0] == "mmneuro" and check(item.name, node.lineno):
                    aliases[item.asname] = item.name if item.asname else None
                    aliases.setdefault("mmneuro", "mmneuro")
    aliases = {k: v for k, v in aliases.items() if k and v}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            check(f"{aliases[node.value.id]}.{node.attr}", node.lineno)
    return sorted(set(missing), key=lambda m: int(m.split(":")[0]))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_uses_only_existing_mmneuro_names(script):
    assert missing_mmneuro_names(script.read_text()) == []


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_without_running(script, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{script.name} parses arguments at import; put the work under main()")

    monkeypatch.syspath_prepend(str(script.parent))  # the probes import their sibling benchmarks
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", refuse)
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as err:  # the peer libraries compared against are optional installs
        if (err.name or "").split(".")[0] in OPTIONAL:
            pytest.skip(f"{script.name} needs {err.name}")
        raise
    assert callable(getattr(module, "main", None)) or script.stem in HELPERS


def test_timing_helper_summarises_rounds(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS[0].parent))
    from rounds import run_rounds

    times = iter([2.0, 1.0, 4.0, 1.0, 3.0, 2.0])  # old, new per round: ratios 2, 4, 1.5
    seconds = run_rounds({"old": lambda: next(times), "new": lambda: next(times)}, 3, baseline="old")
    out = capsys.readouterr().out
    assert seconds == {"old": [2.0, 4.0, 3.0], "new": [1.0, 1.0, 2.0]}
    assert out.count("load ") == 3
    assert "old: min 2.000 s, median 3.000 s, max 4.000 s" in out
    assert "old/new: median 2.00 (range 1.50-4.00; per round 2.00, 4.00, 1.50)" in out
    with pytest.raises(ValueError):
        run_rounds({"old": lambda: 1.0}, 2)


def test_checker_finds_removed_and_private_names():
    source = ("from mmneuro.analysis import pipeline\n"
              "from mmneuro.analysis.scoring import cluster_agreement\n"
              "def f():\n"
              "    from mmneuro.synth.scoring import load_truths, no_such_function\n"
              "    return pipeline._load_truths, pipeline.splits, load_truths\n")
    found = missing_mmneuro_names(source)
    assert [m.split(" ")[1] for m in found] == ["mmneuro.analysis.scoring.cluster_agreement",
                                               "mmneuro.synth.scoring.no_such_function",
                                               "mmneuro.analysis.pipeline._load_truths"]
