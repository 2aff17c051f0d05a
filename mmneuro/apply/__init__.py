"""Apply a frozen trained model to new sessions, including sessions missing a modality.

Three lines from a notebook::

    from mmneuro.apply import Session, apply_model
    session = Session("new01", audio="rec.wav")                 # audio only
    apply_model("results/models/mopoe", [session], "results/apply/mopoe")

Each session is preprocessed with the parameters stored with the model, embedded, its missing
modality predicted (decoder means over posterior samples), scored where the modality is present
after all, and compared with the training data (out-of-distribution check). A session whose units
were sorted on their own (``Session(..., units="own")``) first gets a read-in and read-out for its
units fitted to the frozen model (mmneuro.apply.readin). Output per session:
``<out>/<session>/applied.nc`` and ``report.html`` (docs/apply.md; ``unit_matching.csv`` for own units).
"""

from mmneuro.apply.pipeline import ApplySettings, apply_model, apply_to_data
from mmneuro.apply.sessions import Session, preprocess, stored_params

__all__ = ["ApplySettings", "Session", "apply_model", "apply_to_data", "preprocess", "stored_params"]
