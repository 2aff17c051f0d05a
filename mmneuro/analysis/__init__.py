"""Analysis of a trained multimodal VAE: which clusters of neurons go with vocalizations in which
frequency range (docs/analysis.md).

From a notebook (nothing written until ``write``)::

    import mmneuro as mm
    from mmneuro.analysis import AnalysisSettings
    result = mm.analyse(model, ds, settings=AnalysisSettings(n_clusters=7))
    result.clusters                      # one row per unit; also .crosspred, .cluster_band, .summary …
    result.write("results/analysis/mvae")

``analyse_folder(model_dir, dataset_path, out_dir)`` does the same from and to files (``mmneuro analyse``).
Runs of one model trained with other seeds: ``mmneuro.analysis.consistency.consistency({"seed0": model0,
"seed1": model1}, ds)`` (``mmneuro consistency``).
The statistics (``neurons``, ``bands``, ``crosspred``) work on plain arrays too. The analysis never
imports ``mmneuro.report``; demo ground truth is scored by ``mmneuro.synth.scoring``.
"""

from mmneuro.analysis.settings import AnalysisSettings

_LAZY = {"analyse": "mmneuro.analysis.pipeline", "analyse_folder": "mmneuro.analysis.pipeline",
         "AnalysisResult": "mmneuro.analysis.result"}  # imported on first use: they pull in torch


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmneuro.analysis' has no attribute {name!r}")


__all__ = ["AnalysisResult", "AnalysisSettings", "analyse", "analyse_folder"]
