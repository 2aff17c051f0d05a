"""The object API of the analysis: analyse(model, ds) writes nothing and gives the tables the folder
version writes; result.write(folder) writes the same files; analysis never imports the report."""

import ast
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from mmneuro.analysis.settings import AnalysisSettings
from mmneuro.io import read_netcdf
from test_analysis_pipeline import FAST, planted_world, train_small_model

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("clusters", "latent_band", "cluster_band", "crosspred", "synergy")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    dataset, truth, _ = planted_world(tmp, n_per_session=120, units_per_cluster=2)
    model_dir = train_small_model(tmp, dataset, steps=60)
    settings = AnalysisSettings().replace(dict(a.split("=") for a in FAST))
    return {"tmp": tmp, "dataset": dataset, "truth": truth, "model_dir": model_dir, "settings": settings}


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_analyse_in_memory_equals_the_folder_version(small, tmp_path, monkeypatch):
    import mmneuro as mm
    from mmneuro.analysis import analyse_folder
    from mmneuro.models import load_model

    out = analyse_folder(small["model_dir"], small["dataset"], tmp_path / "folder", truth_dirs=small["truth"],
                         settings=small["settings"], progress=False)
    model, ds = load_model(small["model_dir"]), read_netcdf(small["dataset"])
    before = _files(small["tmp"])
    monkeypatch.chdir(tmp_path / "folder")  # nothing may appear in the working directory either
    cwd_before = _files(Path.cwd())
    # an estimator holding the torch model as `model_` is accepted as well as the model itself
    result = mm.analyse(types.SimpleNamespace(model_=model), ds, settings=small["settings"], truth=small["truth"],
                        progress=False)
    assert _files(small["tmp"]) == before and _files(Path.cwd()) == cwd_before
    for name in TABLES:
        # the same table: byte-identical once written the same way
        assert getattr(result, name).to_csv(index=False) == (out / f"{name}.csv").read_text(), name
    assert json.loads(json.dumps(result.scores, default=float)) == json.loads((out / "scores.json").read_text())
    assert "oracle (planted rate)" in set(result.crosspred["method"])
    assert result.latent_neuron.identical(read_netcdf(out / "latent_neuron.nc"))
    assert result.summary["model"]["dir"] is None and result.summary["model"]["name"] == "mvae"
    assert set(result.figures()) >= {"cross_generation", "predicted_vs_actual", "latent_map"}
    # without a truth: no scores, no oracle rows
    plain = mm.analyse(model, ds, settings=small["settings"], progress=False)
    assert plain.scores == {} and not plain.crosspred["method"].str.startswith("oracle").any()
    with pytest.raises(TypeError, match="analyse_folder"):
        mm.analyse(str(small["model_dir"]), str(small["dataset"]))


def test_result_write_gives_the_folder_files(small, tmp_path):
    from mmneuro.analysis import analyse, analyse_folder
    from mmneuro.models import load_model

    ref = analyse_folder(small["model_dir"], small["dataset"], tmp_path / "ref", truth_dirs=small["truth"],
                         settings=small["settings"], progress=False)
    result = analyse(load_model(small["model_dir"]), read_netcdf(small["dataset"]), settings=small["settings"],
                     truth=small["truth"], progress=False, model_dir=small["model_dir"])
    out = result.write(tmp_path / "out")
    assert _files(out) == _files(ref) and "figures/training_curves.png" in _files(out)
    for name in _files(ref):
        if name == "summary.json":
            a, b = (json.loads((d / name).read_text()) for d in (ref, out))
            a.pop("runtime_s"), b.pop("runtime_s")
            assert a == b
        elif not name.endswith(".nc"):
            assert (ref / name).read_bytes() == (out / name).read_bytes(), name
    # rewriting replaces the folder whole
    (out / "stale.csv").write_text("x\n")
    result.write(out)
    assert not (out / "stale.csv").exists()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at top level) of every import in a file."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, id(node) in top))
    return out


def test_analysis_imports_no_report_and_demo_scoring_only_lazily():
    for path in (ROOT / "mmneuro" / "analysis").glob("*.py"):
        for module, top_level in _imports(path):
            assert not module.startswith("mmneuro.report"), f"{path.name} imports {module}"
            if module.startswith("mmneuro.synth"):
                assert module == "mmneuro.synth.scoring" and not top_level, f"{path.name} imports {module}"
    # and at run time: the analysis modules import with mmneuro.report blocked
    code = ("import sys; sys.modules['mmneuro.report'] = None\n"
            "import mmneuro.analysis.pipeline, mmneuro.analysis.result, mmneuro.analysis.figures\n"
            "assert 'mmneuro.synth' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
