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
(match_new_units on rates decoded from audio over days 1-3's syllables), scored against the
planted identities, beside the shared model's matching of the same pairs. Run from the repository
root::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_apply_units.py --seeds 0 1 2 --kind mopoe
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).parent))
from bench_multisession import CONFIG, overlaps, per_session_scores  # noqa: E402


def run_seed(seed: int, kind: str, n_syllables: int, per_band: int) -> dict:
    from mmneuro.analysis.multisession import decoded_rates, match_new_units, match_units, matching_recall
    from mmneuro.apply.readin import fit_readin
    from mmneuro.dataset import assemble_parts
    from mmneuro.train import fit_model

    parts, truth = multiday_parts(seed, n_syllables, per_band)
    config = CONFIG | {"kind": kind}
    own = {sid: "own" for sid, _, _ in parts}
    everything = assemble_parts(parts, units=own)
    # days 1-2 alone draw the same split as in the union (the split is drawn session after session)
    first = assemble_parts(parts[:2], units={sid: "own" for sid, _, _ in parts[:2]})
    sid, syl, cnt = parts[2]
    day3 = assemble_parts([parts[2]]).assign_coords(
        split=("syllable", everything["split"].values[everything["session"].values == sid]))
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
    # the matching apply writes: rates decoded from each syllable's audio, over all three days' syllables
    audio = audio_only(everything)
    table = match_new_units(decoded_rates(trained, audio), first, decoded_rates(readin.model, audio),
                            day3["unit"].values, sid)
    out["matching_applied"] = matching_recall(table, truth)
    union = match_units(decoded_rates(shared, everything), everything)
    out["matching_shared"] = matching_recall(union[union["session_b"] == sid], truth)
    return out


def multiday_parts(seed: int, n_syllables: int, per_band: int):
    from mmneuro.synth.multiday import multiday_sessions

    return multiday_sessions(seed, n_syllables=n_syllables, per_band=per_band)


def audio_only(ds: xr.Dataset) -> xr.Dataset:
    """The spectrograms of ``ds`` alone (has_neural 0): inputs for decoding rates from audio."""
    out = ds[["spectrogram"]].drop_vars([c for c in ds.coords if "unit" in ds[c].dims], errors="ignore")
    return out.assign_coords(has_neural=("syllable", np.zeros(ds.sizes["syllable"], np.int8)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--kind", default="mopoe")
    parser.add_argument("--syllables", type=int, default=600, help="syllables per session")
    parser.add_argument("--per-band", type=int, default=12, help="neurons per planted band (4 bands)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, args.kind, args.syllables, args.per_band))
        print(json.dumps(results[-1]), flush=True)
    summary = {f"{m}_r": [round(r[m]["r"], 3) for r in results] for m in ("applied", "alone", "shared")}
    summary |= {f"{m}_ari": [round(r[m]["ari"], 2) for r in results] for m in ("applied", "alone", "shared")}
    for m in ("matching_applied", "matching_shared"):
        summary |= {f"{m}_{k}": [round(r[m][k], 2) for r in results] for k in ("recall", "precision", "same_band")}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "summary": summary, "kind": args.kind}, f, indent=1)


if __name__ == "__main__":
    main()
