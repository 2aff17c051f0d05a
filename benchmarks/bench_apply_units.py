"""A new day with its own units (issue 20): a fitted read-in/read-out vs retraining, on planted data.

For each data seed: mmneuro.synth.multiday draws one population recorded on 3 days, each day a
random 30-60 % of it under renumbered unit ids. Day 3 is scored three ways, on its test syllables
with the same split (bench_multisession's config and scores):

* applied: a model trained on days 1-2 (``units: own``), frozen, with a read-in and read-out
  fitted to day 3's units on its train syllables (mmneuro.apply.readin.fit_readin, what
  ``mmneuro apply`` does for a session marked ``units: own``);
* alone: a model trained on day 3 only;
* shared: one model trained on all 3 days.

Also the matching of day 3's units against days 1-2 that ``mmneuro apply`` writes
(mmneuro.apply.readin.match_to_training: the analysis' unit_matching over days 1-3's syllables),
scored against the planted identities, beside the shared model's matching of the same pairs. Run from the repository
root::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_apply_units.py --seeds 0 1 2 --kind mopoe
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_multisession import CONFIG, arguments, overlaps, per_session_scores, run_seeds, write_summary  # noqa: E402


def run_seed(seed: int, kind: str, n_syllables: int, per_band: int) -> dict:
    from mmneuro.analysis.multisession import matching_recall, unit_matching
    from mmneuro.apply.readin import fit_readin, match_to_training
    from mmneuro.dataset import assemble_parts
    from mmneuro.synth.multiday import multiday_sessions
    from mmneuro.train import fit_model

    parts, truth = multiday_sessions(seed, n_syllables=n_syllables, per_band=per_band)
    config = CONFIG | {"kind": kind}
    own = {sid: "own" for sid, _, _ in parts}
    everything = assemble_parts(parts, units=own)
    # days 1-2 alone draw the same split as in the union (the split is drawn session after session)
    first = assemble_parts(parts[:2], units={sid: "own" for sid, _, _ in parts[:2]})
    sid = parts[2][0]
    day3 = assemble_parts([parts[2]]).assign_coords(
        split=("syllable", everything["split"].values[everything["session"].values == sid]))
    day3.attrs["session"] = sid
    out = {"seed": seed, "overlap": overlaps(truth), "day": sid}
    t0 = time.perf_counter()
    trained = fit_model(first, config, progress=False).model
    out["fit_days12_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    readin = fit_readin(trained, day3, neural_input=CONFIG["neural_input"], seed=0)
    out["readin_s"], out["readin_epochs"] = time.perf_counter() - t0, len(readin.metrics)
    out["readin_best_epoch"] = readin.best_epoch
    alone = fit_model(day3, config, progress=False).model
    shared = fit_model(everything, config, progress=False).model
    out["applied"] = per_session_scores(readin.model, day3, sid, truth)
    out["alone"] = per_session_scores(alone, day3, sid, truth)
    out["shared"] = per_session_scores(shared, everything, sid, truth)
    # the matching apply writes (over days 1-2's and day 3's syllables), and the analysis' of the
    # model of all 3 days, restricted to the same pairs (day 3's units against days 1-2's)
    applied = match_to_training(trained, readin.model, first, day3, readin.split, CONFIG["neural_input"])
    union = unit_matching(shared, everything)
    union = union[(union["session_a"] == sid) | (union["session_b"] == sid)]
    for name, table in (("applied", applied), ("shared", union)):
        out[f"matching_{name}"] = matching_recall(table, truth)
        out[f"matching_{name}_confident"] = matching_recall(table.assign(matched=table["confident"]), truth)
    return out


def main() -> None:
    args = arguments(__doc__, kind="mopoe", syllables=600)
    results = run_seeds(run_seed, args)
    summary = {f"{m}_r": [round(r[m]["r"], 3) for r in results] for m in ("applied", "alone", "shared")}
    summary |= {f"{m}_ari": [round(r[m]["ari"], 2) for r in results] for m in ("applied", "alone", "shared")}
    for m in ("matching_applied", "matching_shared", "matching_applied_confident", "matching_shared_confident"):
        summary |= {f"{m}_{k}": [round(r[m][k], 2) for r in results] for k in ("recall", "precision", "same_band")}
    write_summary(args, results, summary)


if __name__ == "__main__":
    main()
