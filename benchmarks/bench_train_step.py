"""CPU time of one training step (forward, backward, gradient clipping, Adam) of each model the
workflow trains, on one thread, on the workflow's dataset; the measure behind docs/models.md
"Conv widths and the demo's time budget".

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train_step.py results/dataset.nc \\
        [--set audio.channels=[16,16,32,64]] [--steps 30] [--rounds 3]

CPU time (``time.process_time``), not wall time: a loaded machine does not inflate it. Each model
is built as the workflow builds it (config/config.yaml's ``train`` + ``model_overrides``), with the
first ``batch_size`` syllables as the batch; 3 untimed warm-up steps, then ``--steps`` timed ones,
in ``--rounds`` rounds (benchmarks/rounds.py); with ``--set``, the config with and without it side by
side, and their ratio per round.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step_s(dataset, settings: dict, steps: int) -> float:
    import torch

    from mmneuro import train as T
    from mmneuro.allocator import reuse_freed_memory
    from mmneuro.inputs import training_arrays
    from mmneuro.models import MultimodalVAE

    model_dict, train = T.split_config(settings)
    modalities = tuple(train.modalities or T.MODALITIES)
    arrays = training_arrays(dataset, train.neural_input, modalities, "dataset")
    torch.manual_seed(train.seed)
    model = MultimodalVAE(T.build_model_config(model_dict, train, arrays, {}))
    optimizer = T.make_optimizer(model, train.lr)
    x = {m: torch.from_numpy(a[: train.batch_size]) for m, a in arrays.items()}
    generator = torch.Generator().manual_seed(0)

    def step():
        loss, _ = model.loss(x, beta=model.config.beta, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()

    with reuse_freed_memory():  # as mmneuro.train runs its steps
        for _ in range(3):
            step()
        start = time.process_time()
        for _ in range(steps):
            step()
        return (time.process_time() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    from rounds import machine, run_rounds

    from mmneuro.config import load_config
    from mmneuro.io import read_netcdf
    from mmneuro.cli.train import apply_overrides

    print(machine())
    torch.set_num_threads(1)
    config = load_config(args.config)
    dataset = read_netcdf(args.dataset)
    print("CPU seconds per training step" + (f"; ratio: the config / the config with --set {' '.join(args.set)}"
                                             if args.set else ""))
    for name in config["models"]:
        kind = name.split("_")[0]
        settings = {**config["train"], **config["model_overrides"].get(name, {}), "kind": kind, "seed": config["seed"]}
        variants = {"config": settings}
        if args.set:  # apply_overrides changes the dict it is given
            variants["with --set"] = apply_overrides(copy.deepcopy(settings), args.set)
        run_rounds({v: (lambda s=s: step_s(dataset, s, args.steps)) for v, s in variants.items()}, args.rounds,
                   baseline="config" if args.set else None, label=f"{name}: ")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
