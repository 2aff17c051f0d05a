"""How well can a perfect denoiser score? The ceiling of the per-syllable image r, per representation.

For each syllable of a planted family (segmented as the workflow does), the image is re-rendered
from the generator's clean waveform plus ``--replicates`` fresh draws of the session's white noise
(same noise floor, same columns). Their mean approximates E[image | syllable], the best any decoder
can output under squared error, and per syllable (mean over syllables):

- ``retest``: r between two noise draws ρ² (the share of an image's pixel variance that the call
  explains; 1 − retest is the noise's share);
- ``ceiling``: √retest, r(E[image | syllable], image): the most a perfect audio→audio
  reconstruction scores on average (``ceiling_k``: r of the mean of the draws, biased low by their
  leftover noise);
- ``clean_r``: r(image, the noise-free image) in the same representation;
- ``ref_ceiling``: r(E[image | syllable] mapped to the reference representation, reference image),
  the same fixed reference for every representation (the images before 2026-12-02: interp rows,
  [0, 40] dB; dB = lo + (hi − lo) × pixel, then the reference's clip);
- ``amp_r2``: R² of log planted amplitude from the image's mean column maximum over the contour's
  columns (does the image keep the level?), ``sat``: fraction of contour columns at 1 (clipped).

Each ``--variant`` is a comma-separated list of audio overrides on top of config.yaml's audio.set
(``-`` for none). Example (docs/models.md "Spectrogram representation")::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_spectrogram_ceiling.py --family demo \\
        --variant image_rows=interp,spec_lo_db=0,spec_hi_db=40 --variant -
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _r(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    d = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / d) if d > 0 else np.nan


def session_images(session_dir: Path, syllables: xr.Dataset, params: dict, replicates: int, seed: int):
    """(images, noise draws (R, N, F, T), clean images, planted amplitude) of one session's syllables."""
    from mmneuro.audio.spectrogram import image_centres, image_from_levels, image_rows
    from mmneuro.audio.stft import band_power_db, frame_grid, frames_centred_at, noise_floor_db
    from mmneuro.audio.wav import open_wav, span_reader
    from mmneuro.synth.config import SynthConfig
    from mmneuro.synth.syllables import syllable_waveform

    truth = json.loads((session_dir / "ground_truth.json").read_text())
    config = SynthConfig.from_dict(truth["config"])
    planted = truth["syllables"]
    p_on = np.array([s["onset_s"] for s in planted])
    wav = open_wav(session_dir / "audio.wav", None, params["max_freq_hz"])
    grid = frame_grid(wav.sample_rate_hz, params)
    floor = noise_floor_db(wav, grid, params)
    rows = image_rows(grid, params)
    rng = np.random.default_rng(seed)
    out = {"image": [], "draws": [], "clean": [], "amplitude": []}
    with span_reader(wav) as read:
        for onset, offset in zip(syllables["onset_s"].values, syllables["offset_s"].values):
            centres = image_centres(onset, offset, grid, params)
            first = int(centres.min()) - grid.nperseg // 2
            stop = int(centres.max()) - grid.nperseg // 2 + grid.nperseg
            clean = np.zeros(stop - first)
            best, amp = 0.0, np.nan
            for k in np.flatnonzero((p_on < stop / grid.sample_rate_hz + 1.0) & (p_on > first / grid.sample_rate_hz - 1.0)):
                s0, wave = syllable_waveform(planted[k], wav.sample_rate_hz, config)
                a, b = max(s0, first), min(s0 + len(wave), stop)
                if a < b:
                    clean[a - first:b - first] += wave[a - s0:b - s0]
                    overlap = min(offset, planted[k]["offset_s"]) - max(onset, planted[k]["onset_s"])
                    if overlap > best:
                        best, amp = overlap, planted[k]["amplitude"]

            def image(x):
                level = band_power_db(frames_centred_at(x.astype(np.float32), first, centres, grid), grid) - floor
                return image_from_levels(level, rows, params)

            out["image"].append(image(read(first, stop)))
            out["clean"].append(image(clean))
            out["draws"].append([image(clean + config.white_noise_rms * rng.standard_normal(len(clean)))
                                 for _ in range(replicates)])
            out["amplitude"].append(amp)
    return {k: np.asarray(v) for k, v in out.items()}


def to_default(images: np.ndarray, params: dict, default: dict) -> np.ndarray:
    """Images of one representation expressed on the default's dB scale and clip."""
    db = params["spec_lo_db"] + (params["spec_hi_db"] - params["spec_lo_db"]) * images
    return np.clip((db - default["spec_lo_db"]) / (default["spec_hi_db"] - default["spec_lo_db"]), 0, 1)


def score(images: dict, params: dict, default: dict, reference: np.ndarray) -> dict:
    x, draws, clean = images["image"], images["draws"], images["clean"]
    expected = draws.mean(1)
    ref_expected = to_default(expected, params, default)
    rows = []
    for i in range(len(x)):
        cols = clean[i].max(0) >= 0.3 * max(clean[i].max(), 1e-6)
        level = x[i][:, cols].max(0) if cols.any() else np.array([np.nan])
        retest = _r(draws[i, 0], draws[i, 1])
        rows.append({"ceiling": np.sqrt(max(retest, 0.0)), "ceiling_k": _r(expected[i], x[i]), "retest": retest,
                     "clean_r": _r(clean[i], x[i]), "ref_ceiling": _r(ref_expected[i], reference[i]),
                     "col_max": float(level.mean()), "sat": float((level >= 1).mean()),
                     "amplitude": images["amplitude"][i]})
    table = pd.DataFrame(rows)
    ok = table["col_max"].notna() & table["amplitude"].notna()
    fit = np.corrcoef(np.log(table.loc[ok, "amplitude"]), table.loc[ok, "col_max"])[0, 1] ** 2
    summary = table.drop(columns=["amplitude", "col_max"]).mean().to_dict()
    return {**summary, "amp_r2": float(fit), "n": len(table)}


def main() -> None:
    from mmneuro.audio.presets import resolve_params

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="demo", help="folder under --data with data/<session>/ and results/")
    ap.add_argument("--data", type=Path, default=Path("/work/bq"))
    ap.add_argument("--variant", action="append", default=[], help="KEY=VALUE,KEY=VALUE or -")
    ap.add_argument("--replicates", type=int, default=8)
    ap.add_argument("--max-syllables", type=int, default=150, help="per session (evenly spaced)")
    args = ap.parse_args()
    from rounds import machine

    print(machine())  # quality, not timing: seeds and families are its repeats
    base = (yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["audio"].get("set") or {})
    # the fixed reference of ref_ceiling: the images before 2026-12-02 (as bench_model_quality's *_ref)
    default = resolve_params(overrides={**base, "image_rows": "interp", "spec_lo_db": 0.0, "spec_hi_db": 40.0})
    results = args.data / args.family / "results"
    sessions = sorted(p.parent for p in (args.data / args.family / "data").glob("*/ground_truth.json"))
    picks = {}
    for s in sessions:
        syl = xr.open_dataset(results / s.name / "syllables.nc")
        keep = np.unique(np.linspace(0, syl.sizes["syllable"] - 1, args.max_syllables).astype(int))
        picks[s] = syl.isel(syllable=keep).load()
    reference = {s: session_images(s, picks[s], default, 2, 0)["image"] for s in sessions}
    for variant in args.variant or ["-"]:
        changes = {} if variant == "-" else dict(kv.split("=", 1) for kv in variant.split(","))
        params = resolve_params(overrides={**base, **changes})
        per = [score(session_images(s, picks[s], params, args.replicates, 1), params, default, reference[s])
               for s in sessions]
        n = np.array([p["n"] for p in per])
        mean = {k: float(np.average([p[k] for p in per], weights=n)) for k in per[0] if k != "n"}
        print(json.dumps({"family": args.family, "variant": variant, "n": int(n.sum()),
                          **{k: round(v, 3) for k, v in mean.items()}}), flush=True)


if __name__ == "__main__":
    main()
