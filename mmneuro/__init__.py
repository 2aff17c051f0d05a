"""mmneuro: shared latent spaces of mouse ultrasonic vocalizations and neural activity.

The Python API (three lines from sessions to results, nothing written)::

    import mmneuro as mm
    ds = mm.preprocess(mm.load_sessions("sessions.tsv"))   # xarray Dataset
    model = mm.MoPoE(latent_dim=16).fit(ds)               # also mm.MVAE, mm.MMVAE; .save / .load
    result = mm.analyse(model, ds)                         # result.clusters …; result.write(folder)

Names are imported on first use, so ``import mmneuro`` (and ``mmneuro --help``) stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it (imported lazily, PEP 562)
_API = {
    "load_sessions": "mmneuro.config",
    "preprocess": "mmneuro.stages",
    "MVAE": "mmneuro.estimator",
    "MMVAE": "mmneuro.estimator",
    "MoPoE": "mmneuro.estimator",
    "analyse": "mmneuro.analysis",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mmneuro' has no attribute {name!r}")
