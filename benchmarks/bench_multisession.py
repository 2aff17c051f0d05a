"""Sessions sorted separately (issue 20): one shared model vs one model per session, on planted data.

For each data seed: mmneuro.synth.multiday draws one population of frequency-tuned neurons
recorded on 3 days, each day a random 30-60 % of it under renumbered unit ids. Trained on the same
syllables with the same config:

* shared: one model on the union dataset (mmneuro.dataset, ``units: own``: NaN counts for other
  days' units, a per-session read-in and read-out);
* per-session: one model per day on that day alone.

Per day: cluster ARI (Ward + silhouette on the units' correlations with the posterior means on the
day's held-out syllables, mmneuro.analysis.neurons, against the planted bands: the analysis'
``cluster_on: latents``), the ARI of the analysis' default clustering (``ari_tuning``: tuning curves
from the day's counts, model-free, the same for both models) and audio->neural r
(mean over the day's units of the Pearson r between the rate predicted from audio alone and the
count, on the day's test syllables). Shared model only: the cross-session matching
(mmneuro.analysis.multisession.match_units) scored against the planted identities. Run from the
repository root::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_multisession.py --seeds 0 1 2 --kind mopoe

``--cache DIR`` keeps every trained model (DIR/<kind>-<syllables>x<per_band>/seed<k>[-t<train seed>]/
<shared|day..>/) and loads it on the next run, so that a change to the analysis or the matching is
measured without retraining. ``--train-seeds 0 1`` trains everything once per training seed and
says whether a session's shared - per-session difference in r comes back with another training seed
(systematic) or not (noise); per session, the difference's standard error over the test syllables
(paired bootstrap) is in the results.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

CONFIG = {"latent_dim": 8, "epochs": 40, "min_steps": 0, "batch_size": 32, "neural_input": "total_counts",
          "patience": 8, "seed": 0, "audio": {"channels": [8, 16], "hidden": [64]}, "neural": {"hidden": [64]}}
# --default-training: the library's training length instead (30 epochs raised to min_steps 600 optimiser
# steps, early stopping after 8): a day of 600 syllables trains ~43 epochs, the 3 days together 30
FIXED_TRAINING = ("epochs", "min_steps", "patience")


def per_session_scores(model, ds, session: str, truth: dict) -> dict:
    """Cluster ARI and audio->neural r of ``model`` on ``session`` (its own units only)."""
    from sklearn.metrics import adjusted_rand_score

    from mmneuro.analysis.embed import posterior_moments
    from mmneuro.analysis.multisession import session_view
    from mmneuro.analysis.neurons import cluster_profiles, correlation
    from mmneuro.inputs import model_inputs

    rows = np.flatnonzero(ds["session"].values == session)
    view = session_view(ds, session)
    held = view["split"].values != "train"
    x = model_inputs(ds.isel(syllable=rows), model)
    mean, _ = posterior_moments(model, x, ("audio", "neural"))
    profiles = correlation(view["total_counts"].values[held], mean[held])
    labels = cluster_profiles(profiles)["labels"]
    bands = [truth["neurons"][truth["units"][session][int(u)]]["band"] for u in view["unit"].values]
    pred, counts, expected = test_predictions(model, ds, session, truth)
    # r_rate: against the planted expected counts instead of the Poisson draws, the same question
    # without the count noise, which at ~90 test syllables a day hides differences of 0.01 in r
    return {"ari": float(adjusted_rand_score(bands, labels)), "r": mean_r(pred, counts),
            "r_rate": mean_r(pred, expected), "units": len(view["unit"])}


def tuning_ari(ds, session: str, truth: dict) -> float:
    """Cluster ARI of the analysis' default clustering (``cluster_on: tuning``: tuning curves from the
    session's own counts on every syllable, no model, so the same for the shared and the per-session
    model) against the planted bands."""
    from dataclasses import replace

    from sklearn.metrics import adjusted_rand_score

    from mmneuro.analysis.multisession import session_view
    from mmneuro.analysis.pipeline import cluster_units, splits, unit_tuning
    from mmneuro.analysis.settings import AnalysisSettings

    settings = AnalysisSettings()
    both, _ = splits(session_view(ds, session), replace(settings, split="all"), session)
    tuning = unit_tuning(both, settings)
    labels = cluster_units(tuning["profiles"], tuning["tuned"], settings)["labels"]
    bands = [truth["neurons"][truth["units"][session][int(u)]]["band"] for u in both["unit"].values]
    return float(adjusted_rand_score(bands, labels))


def test_predictions(model, ds, session: str, truth: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On ``session``'s test syllables, for its own units: the counts ``model`` predicts from audio
    alone, the counts drawn and the planted expected counts, each (syllables, units)."""
    import torch

    from mmneuro.analysis.multisession import session_view
    from mmneuro.dataset import recorded_units
    from mmneuro.inputs import model_inputs

    rows = np.flatnonzero(ds["session"].values == session)
    view = session_view(ds, session)
    test = view["split"].values == "test"
    x = model_inputs(ds.isel(syllable=rows[test]), model)
    with torch.no_grad():
        pred = model.predict({"audio": torch.from_numpy(x["audio"])}, ["audio"], "neural").numpy()
    return (pred[:, recorded_units(ds)[session]], view["total_counts"].values[test],
            planted_counts(view, truth, session)[test])


def mean_r(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean over units (columns) of the Pearson r between ``pred`` and ``target`` over syllables."""
    from mmneuro.analysis.neurons import correlation

    return float(np.mean(np.diag(correlation(pred, target))))


def paired_bootstrap_se(pred_a: np.ndarray, pred_b: np.ndarray, target: np.ndarray, n: int = 500) -> float:
    """Standard error of mean_r(pred_a, target) - mean_r(pred_b, target) over the test syllables:
    the spread of the difference over ``n`` resamplings of the syllables (the same ones for both)."""
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, len(target), len(target)) for _ in range(n)]
    return float(np.std([mean_r(pred_a[i], target[i]) - mean_r(pred_b[i], target[i]) for i in rows]))


def planted_counts(view, truth: dict, session: str) -> np.ndarray:
    """Expected spike counts (syllables, units) of a session's units under the planted tuning curves."""
    from mmneuro.synth.multiday import WINDOW_EXTRA_S, planted_rate_hz

    neurons = [truth["neurons"][truth["units"][session][int(u)]] for u in view["unit"].values]
    window = view["offset_s"].values - view["onset_s"].values + WINDOW_EXTRA_S
    return planted_rate_hz(neurons, view["mean_freq_hz"].values) * window[:, None]


def overlaps(truth: dict) -> dict:
    """Per ordered pair of days: the share of day a's units that day b recorded too."""
    days = {s: set(u.values()) for s, u in truth["units"].items()}
    return {f"{a}->{b}": round(len(days[a] & days[b]) / len(days[a]), 2) for a in days for b in days if a != b}


def trained(ds, config: dict, folder):
    """The model of ``fit_model(ds, config)``: loaded from ``folder`` if it holds one, else trained and
    saved there (``folder`` None: trained, nothing saved)."""
    from mmneuro.models import load_model
    from mmneuro.models.persistence import WEIGHTS_FILE
    from mmneuro.train import fit_model

    if folder is not None and (folder / WEIGHTS_FILE).exists():
        return load_model(folder).eval()
    return fit_model(ds, config, folder, progress=False).model


def cache_folder(cache, seed: int, kind: str, n_syllables: int, per_band: int, train_seed: int = 0,
                 default_training: bool = False):
    """Where ``--cache`` keeps a seed's models (None without a cache)."""
    from pathlib import Path

    name = f"seed{seed}" + (f"-t{train_seed}" if train_seed else "")
    setup = f"{kind}-{n_syllables}x{per_band}" + ("-default-training" if default_training else "")
    return None if cache is None else Path(cache) / setup / name


def run_seed(seed: int, kind: str, n_syllables: int, per_band: int, cache=None, train_seed: int = 0,
             default_training: bool = False) -> dict:
    from mmneuro.analysis.multisession import matching_recall, unit_matching
    from mmneuro.dataset import assemble_parts
    from mmneuro.synth.multiday import multiday_sessions

    folder = cache_folder(cache, seed, kind, n_syllables, per_band, train_seed, default_training)
    where = (lambda name: None) if folder is None else (lambda name: folder / name)
    parts, truth = multiday_sessions(seed, n_syllables=n_syllables, per_band=per_band)
    config = {k: v for k, v in CONFIG.items() if not (default_training and k in FIXED_TRAINING)}
    config |= {"kind": kind, "seed": train_seed}
    shared_ds = assemble_parts(parts, units={sid: "own" for sid, _, _ in parts})
    t0 = time.perf_counter()
    shared = trained(shared_ds, config, where("shared"))
    out = {"seed": seed, "train_seed": train_seed, "shared_fit_s": time.perf_counter() - t0, "sessions": {},
           "overlap": overlaps(truth)}
    t0 = time.perf_counter()
    for sid, syl, cnt in parts:
        # the same syllables and split as in the union (one session: its split is drawn the same way)
        own_ds = shared_ds.isel(syllable=np.flatnonzero(shared_ds["session"].values == sid))
        alone = assemble_parts([(sid, syl, cnt)])
        alone = alone.assign_coords(split=("syllable", own_ds["split"].values))
        model = trained(alone, config, where(sid))
        out["sessions"][sid] = {"shared": per_session_scores(shared, shared_ds, sid, truth),
                                "per_session": per_session_scores(model, alone, sid, truth),
                                "ari_tuning": tuning_ari(shared_ds, sid, truth)}
        (pred_shared, _, expected), (pred_own, _, _) = (test_predictions(m, d, sid, truth)
                                                         for m, d in ((shared, shared_ds), (model, alone)))
        out["sessions"][sid]["r_rate_difference_se"] = paired_bootstrap_se(pred_shared, pred_own, expected)
    out["per_session_fit_s"] = time.perf_counter() - t0
    table = unit_matching(shared, shared_ds)
    out["matching"] = matching_recall(table, truth)
    out["matching_confident"] = matching_recall(table.assign(matched=table["confident"]), truth)
    return out


def arguments(doc: str, kind: str = "mvae", syllables: int = 1000, cache: bool = False) -> argparse.Namespace:
    """The planted multi-day benchmarks' command line (this one's and bench_apply_units.py's; ``cache``:
    with --cache and --train-seeds)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--kind", default=kind)
    parser.add_argument("--syllables", type=int, default=syllables, help="syllables per session")
    parser.add_argument("--per-band", type=int, default=12, help="neurons per planted band (4 bands)")
    parser.add_argument("--json", default=None, help="also write the results here")
    if cache:
        parser.add_argument("--cache", default=None, help="keep the trained models here and reuse them")
        parser.add_argument("--train-seeds", type=int, nargs="+", default=[0],
                            help="the models' training seeds (each trains all models; summary of the first)")
        parser.add_argument("--default-training", action="store_true",
                            help="the library's training length (as the workflow trains) instead of 40 epochs")
    return parser.parse_args()


def run_seeds(run_seed, args: argparse.Namespace, **options) -> list[dict]:
    """``run_seed(seed, kind, syllables, per_band, **options)`` for each of ``args.seeds``, each result
    printed as it comes."""
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, args.kind, args.syllables, args.per_band, **options))
        print(json.dumps(results[-1]), flush=True)
    return results


def write_summary(args: argparse.Namespace, results: list[dict], summary: dict) -> None:
    """Print the summary; with ``--json``, write the results and the summary there too."""
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "summary": summary, "kind": args.kind}, f, indent=1)


def main() -> None:
    args = arguments(__doc__, cache=True)
    runs = [run_seeds(run_seed, args, cache=args.cache, train_seed=t, default_training=args.default_training)
            for t in args.train_seeds]
    results = runs[0]
    summary = {}
    for model in ("shared", "per_session"):
        for key in ("ari", "r", "r_rate"):
            values = [s[model][key] for res in results for s in res["sessions"].values()]
            summary[f"{model}_{key}"] = {"median": float(np.median(values)), "worst": float(np.min(values))}
    diffs = {key: [s["shared"][key] - s["per_session"][key] for res in results for s in res["sessions"].values()]
             for key in ("ari", "r", "r_rate")}
    summary |= {f"shared_minus_per_session_{k}": {"median": float(np.median(v)), "worst": float(np.min(v))}
                for k, v in diffs.items()}
    tuning = [s["ari_tuning"] for res in results for s in res["sessions"].values()]
    summary["ari_tuning"] = {"median": float(np.median(tuning)), "worst": float(np.min(tuning)),
                             "at_least_0.9": int(np.sum(np.array(tuning) >= 0.9)), "sessions": len(tuning)}
    se = np.array([s["r_rate_difference_se"] for res in results for s in res["sessions"].values()])
    summary["r_rate_difference"] = {"sessions": len(se), "at_least_0": int(np.sum(np.array(diffs["r_rate"]) >= 0)),
                                    "below_minus_2_se": int(np.sum(np.array(diffs["r_rate"]) < -2 * se)),
                                    "median_se": float(np.median(se))}
    if len(runs) > 1:  # the same sessions trained again: is a session's difference reproducible?
        per_run = np.array([[s["shared"]["r_rate"] - s["per_session"]["r_rate"] for res in run
                             for s in res["sessions"].values()] for run in runs])
        summary["r_rate_difference_by_training_seed"] = {
            "training_seeds": args.train_seeds, "median": np.median(per_run, 1).tolist(),
            "worst": per_run.min(1).tolist(), "at_least_0": (per_run >= 0).sum(1).tolist(),
            "mean_over_training_seeds_worst": float(per_run.mean(0).min()),
            "correlation_between_first_two": float(np.corrcoef(per_run[0], per_run[1])[0, 1]),
            "sd_between_first_two": float(np.std(per_run[0] - per_run[1]) / np.sqrt(2))}
    for which in ("matching", "matching_confident"):
        for key in ("recall", "unit_recall", "unit_recall_all", "precision", "same_band"):
            values = [r[which][key] for r in results]
            summary[f"{which}_{key}"] = {"median": float(np.median(values)), "worst": float(np.min(values))}
    write_summary(args, [r for run in runs for r in run], summary)


if __name__ == "__main__":
    main()
