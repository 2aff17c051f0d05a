"""Recovery of planted structure on a family of configurations (issue 15).

For each of ``--configs`` seeded configurations ``mmneuro.synth.draw_config(seed)`` (2-6 bands,
widths 2-10 kHz, 0-2 non-frequency clusters, 0-40 % untuned units, ...): generate the sessions, run
the workflow (audio -> neural -> dataset -> train every model -> analyse) with the demo's config
(config/config.yaml) apart from the sessions, and print per configuration x model:

* ARI over all good units (the planted untuned units one group, the units called untuned another);
* untuned recall (planted untuned called untuned) and false-flag rate (planted tuned called untuned);
* band-centre errors (kHz) of every planted band cluster (NaN: its units' cluster got no band);
* audio->neural mean per-unit r over the oracle's;

then the median and the worst over configurations per model. Run from the repository root::

    nice python benchmarks/bench_recovery.py --out /tmp/bench_recovery --configs 8 --duration-s 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("mvae", "mmvae", "mopoe")


def run_config(seed: int, folder: Path, args) -> dict:
    """Generate config ``seed``'s sessions in ``folder``, run the workflow, return scores per model."""
    from mmneuro.synth import draw_config, generate_demo

    config = draw_config(seed)
    if not (folder / "data" / "sessions.tsv").is_file():
        generate_demo(folder / "data", n_sessions=args.sessions, duration_s=args.duration_s, seed=seed,
                      config=config)
    workflow = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    workflow.update(sessions=str(folder / "data" / "sessions.tsv"), results=str(folder / "results"),
                    models=list(args.models) or list(MODELS), seed=0)
    workflow.pop("demo", None)
    if args.epochs:
        workflow["train"]["epochs"] = args.epochs
    (folder / "config.yaml").write_text(yaml.safe_dump(workflow))
    # the scores against the planted truth (workflow/rules/score.smk: beside the analysis, not in it)
    targets = [str(folder / "results" / "scores" / m) for m in args.models] or [str(folder / "results" / "dataset.nc")]
    t0 = time.perf_counter()
    if not args.rescore:
        subprocess.run([sys.executable, "-m", "snakemake", *targets, "--snakefile", str(ROOT / "Snakefile"),
                        "--configfile", str(folder / "config.yaml"), "--cores", str(args.cores), "--quiet",
                        "--rerun-incomplete"], check=True, cwd=folder, env={**os.environ, "PYTHONHASHSEED": "0"})
    out = {"seed": seed, "runtime_s": time.perf_counter() - t0,
           "config": {"bands_khz": [round(c / 1e3, 1) for c in config.band_centers_hz],
                      "width_khz": round(config.band_width_hz / 1e3, 1), "extra": list(config.extra_clusters),
                      "per_cluster": config.units_per_cluster, "n_untuned": config.n_untuned,
                      "baseline_hz": [round(b, 1) for b in config.baseline_hz]}, "models": {}}
    if not args.models:
        out["models"]["model-free"] = {**model_free(folder), "ari_latent_profiles": None, "r_over_oracle": None}
    for m in args.models:
        s = json.loads((folder / "results" / "scores" / m / "scores.json").read_text())
        c = s["clusters"]
        out["models"][m] = {"ari": c["ari"], "ari_latent_profiles": latent_profile_ari(folder, m),
                            "untuned_recall": c["untuned_recall"],
                            "false_flag_rate": c["false_flag_rate"],
                            "band_errors_khz": [r["error_khz"] for r in s["band_recovery"]],
                            "r_over_oracle": s.get("model_over_oracle_r")}
    return out


def latent_profile_ari(folder: Path, model: str) -> float:
    """ARI of the alternative clustering (`cluster_on=latents`: the tuned units' correlations with
    the model's latents on held-out syllables, same Ward + silhouette), untuned units as one group."""
    import pandas as pd

    from mmneuro.analysis.neurons import cluster_profiles
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import read_netcdf
    from mmneuro.synth import load_ground_truth
    from mmneuro.synth.scoring import cluster_agreement

    analysis = folder / "results" / "analysis" / model
    table = pd.read_csv(analysis / "clusters.csv")
    r = read_netcdf(analysis / "latent_neuron.nc")["r"].sel(correlation="pearson").values.T  # (unit, latent)
    tuned = table["tuned"].to_numpy(bool)
    labels = np.full(len(table), -1)
    labels[tuned] = cluster_profiles(r[tuned], max_clusters=AnalysisSettings().max_clusters)["labels"]
    return cluster_agreement(table["unit"].to_numpy(), labels, load_ground_truth(folder / "data" / "demo01"))["ari"]


def model_free(folder: Path) -> dict:
    """The analysis' model-free part alone on the dataset (tuning test, clusters of tuning curves,
    cluster bands: the same functions `mmneuro analyse` runs), scored against the planted truth."""
    from dataclasses import replace

    from mmneuro.analysis.pipeline import cluster_bands, cluster_units, splits, unit_tuning
    from mmneuro.analysis.settings import AnalysisSettings
    from mmneuro.io import read_netcdf
    from mmneuro.synth import load_ground_truth
    from mmneuro.synth.scoring import band_recovery, cluster_agreement, untuned_recovery

    dataset = folder / "results" / "dataset.nc"
    settings = AnalysisSettings()
    both, _ = splits(read_netcdf(dataset), replace(settings, split="all"), str(dataset))  # every syllable with both modalities
    truth = load_ground_truth(folder / "data" / "demo01")
    tuning = unit_tuning(both, settings)
    labels = cluster_units(tuning["profiles"], tuning["tuned"], settings)["labels"]
    units = both["unit"].values
    rec = band_recovery(units, labels, cluster_bands(both, labels, settings), truth)
    return {"n_syllables": int(both.sizes["syllable"]), "k": int(labels.max()),
            **cluster_agreement(units, labels, truth), **untuned_recovery(units, labels, truth),
            "band_errors_khz": rec["error_khz"].tolist()}


def _fmt(x) -> str:
    return "  nan" if x is None or not np.isfinite(x) else f"{x:5.2f}"


def summarise(rows: list[dict], models) -> list[str]:
    lines = [f"{'config':<8}{'model':<7}{'ARI':>6}{'ARI lat':>8}{'untuned recall':>16}{'false flags':>13}{'max |band err|':>16}"
             f"{'r/oracle':>10}  bands (kHz), width, extra clusters, untuned"]
    worst_err = {}
    for row in rows:
        cfg = row["config"]
        desc = f"{cfg['bands_khz']}, {cfg['width_khz']}, {cfg['extra'] or '-'}, {cfg['n_untuned']}"
        for m in models:
            s = row["models"][m]
            err = np.abs(np.array(s["band_errors_khz"], float))
            worst_err[(row["seed"], m)] = float(np.max(np.nan_to_num(err, nan=np.inf))) if len(err) else np.nan
            lines.append(f"{row['seed']:<8}{m:<7}{_fmt(s['ari']):>6}{_fmt(s['ari_latent_profiles']):>8}"
                         f"{_fmt(s['untuned_recall']):>16}"
                         f"{_fmt(s['false_flag_rate']):>13}{_fmt(worst_err[(row['seed'], m)]):>16}"
                         f"{_fmt(s['r_over_oracle']):>10}  {desc}")
    lines.append("")
    lines.append(f"{'summary':<15}{'ARI':>6}{'ARI lat':>8}{'untuned recall':>16}{'false flags':>13}{'max |band err|':>16}{'r/oracle':>10}")
    for m in models:
        def values(key):
            return np.array([np.nan if r["models"][m][key] is None else r["models"][m][key] for r in rows], float)
        ari, lat, rec, ff = values("ari"), values("ari_latent_profiles"), values("untuned_recall"), values("false_flag_rate")
        ro = values("r_over_oracle")
        err = np.array([worst_err[(r["seed"], m)] for r in rows])
        lines.append(f"{m + ' median':<15}{_fmt(np.nanmedian(ari)):>6}{_fmt(np.nanmedian(lat)):>8}{_fmt(np.nanmedian(rec)):>16}"
                     f"{_fmt(np.nanmedian(ff)):>13}{_fmt(np.nanmedian(err)):>16}{_fmt(np.nanmedian(ro)):>10}")
        lines.append(f"{m + ' worst':<15}{_fmt(np.nanmin(ari)):>6}{_fmt(np.nanmin(lat)):>8}{_fmt(np.nanmin(rec)):>16}"
                     f"{_fmt(np.nanmax(ff)):>13}{_fmt(np.max(err)):>16}{_fmt(np.nanmin(ro)):>10}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work folder (one subfolder per configuration)")
    ap.add_argument("--configs", type=int, default=8, help="configurations drawn: seeds 0..N-1 (default 8)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--sessions", type=int, default=2, help="sessions per configuration (default 2)")
    ap.add_argument("--duration-s", type=float, default=120.0, help="audio length per session (default 120 s)")
    ap.add_argument("--epochs", type=int, default=0, help="training epochs (default: the demo config's)")
    ap.add_argument("--models", nargs="*", default=list(MODELS),
                    help="models to train and analyse (none: only the analysis' model-free part: tuning test, "
                         "clusters, cluster bands; no training)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--rescore", action="store_true", help="only read the results already in --out again")
    args = ap.parse_args()
    from rounds import machine

    print(machine())  # quality, not timing: seeds and families are its repeats
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.configs):
        folder = args.out / f"config{seed:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        row = run_config(seed, folder, args)
        (folder / "recovery.json").write_text(json.dumps(row, indent=1) + "\n")
        rows.append(row)
        print(f"config {seed}: {row['runtime_s']:.0f} s", file=sys.stderr, flush=True)
    print("\n".join(summarise(rows, args.models or ["model-free"])))


if __name__ == "__main__":
    main()
