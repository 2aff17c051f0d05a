"""The analysis figures live in :mod:`mmneuro.analysis.figures` (the analysis writes them; the report
only embeds the PNGs): this name is kept for callers of the old place."""

from mmneuro.analysis.figures import *  # noqa: F401,F403
from mmneuro.analysis.figures import EXAMPLES, _plt  # noqa: F401 (not in *)
