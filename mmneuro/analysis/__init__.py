"""Analysis of a trained multimodal VAE: which clusters of neurons go with vocalizations in which
frequency range (docs/analysis.md).

From a notebook::

    from mmneuro.analysis import analyse, AnalysisSettings
    analyse("results/models/mvae", "results/dataset.nc", "results/analysis/mvae",
            settings=AnalysisSettings(n_clusters=7))

The statistics (``neurons``, ``bands``, ``crosspred``, ``scoring``) work on plain arrays too.
"""

from mmneuro.analysis.settings import AnalysisSettings


def analyse(*args, **kwargs):
    """See :func:`mmneuro.analysis.pipeline.analyse` (imported lazily: it pulls in torch)."""
    from mmneuro.analysis.pipeline import analyse as run

    return run(*args, **kwargs)


__all__ = ["AnalysisSettings", "analyse"]
