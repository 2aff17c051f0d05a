"""What a training process pays before its first step: a fresh Python imports mmneuro.train, builds
an optimiser and takes one step, with torch.optim.Adam(fused=True) (which imports torch._dynamo)
and with mmneuro's optimiser (mmneuro.train.make_optimizer), side by side in rounds.

    .venv/bin/python benchmarks/bench_train_startup.py [--rounds 5]

Each `mmneuro train` (three in `make demo`) pays the difference once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

CODE = ("import sys, torch, mmneuro.train as T\n"
        "m = torch.nn.Linear(3, 2)\n"
        "o = {}\n"
        "m(torch.ones(1, 3)).sum().backward(); o.step()\n"
        "print('torch._dynamo imported:', 'torch._dynamo' in sys.modules)")
VARIANTS = {"torch.optim.Adam(fused=True)": "torch.optim.Adam(m.parameters(), lr=1e-3, fused=True)",
            "make_optimizer": "T.make_optimizer(m, 1e-3)"}


def process_s(optimizer: str) -> float:
    """Wall seconds of one fresh process running CODE with ``optimizer``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", CODE.format(optimizer)], check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from rounds import machine, run_rounds

    print(machine())
    base = next(iter(VARIANTS))
    run_rounds({name: (lambda o=opt: process_s(o)) for name, opt in VARIANTS.items()}, args.rounds, baseline=base,
               label="import mmneuro.train + one step: ")


if __name__ == "__main__":
    main()
