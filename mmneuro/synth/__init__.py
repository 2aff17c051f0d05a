"""Demo sessions in the formats real labs produce, with planted ground truth (``mmneuro synth``).

Each session: a 250 kHz WAV of USV-like syllables over background noise, the spike-sorted units of a
chronic probe as a Phy folder and an NWB file (tuned to syllable features, plus a neural-only slow
drift), TTL sync pulses seen by both clocks, and ``ground_truth.json``.
Layout and schema: docs/data_contract.md, "Demo data".
"""

from mmneuro.synth.config import SynthConfig
from mmneuro.synth.family import draw_config
from mmneuro.synth.session import generate_demo, generate_session, load_ground_truth
from mmneuro.synth.units import planted_rate, slow_drift_factor

__all__ = ["SynthConfig", "draw_config", "generate_session", "generate_demo", "load_ground_truth", "planted_rate",
           "slow_drift_factor"]
