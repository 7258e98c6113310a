"""Two torch jobs on one machine: what OpenMP's wait policy and `threads: auto` buy (docs/BENCHMARK.md, "Two jobs
on one machine"). Run it on an otherwise quiet machine; it prints wall-clock seconds and their ratios.

    python scripts/shared_cores.py quiet [--epochs 2] [--rounds 3]  # one run alone, under each wait policy
    python scripts/shared_cores.py pair [--epochs 1]     # two runs at once, all cores each, under each policy
    python scripts/shared_cores.py sweep [--epochs 10]   # seed=1,2 under joblib n_jobs=2 vs one after the other

Every run is the default `python -m src.train` (the sample data) with `test=false`, the given number of epochs
and no logger, in a temporary folder. The policies: "ours" (the package bounds spinning: GOMP_SPINCOUNT=10000),
"default" (OpenMP's own: 300,000 spins, then sleep; what ran before), "passive" (sleep at once).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> environment: the package's own bound on spinning (GOMP_SPINCOUNT=10000, src/__init__.py), OpenMP's
# default (an empty OMP_WAIT_POLICY keeps the package from setting anything), and PASSIVE
POLICIES = {"ours": {}, "default": {"OMP_WAIT_POLICY": ""}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def train_command(folder: Path, epochs: int, *extra: str, multirun: bool = False) -> list[str]:
    return [
        sys.executable,
        "-m",
        "src.train",
        *(["-m"] if multirun else []),
        f"trainer.max_epochs={epochs}",
        "test=false",
        "~logger",
        "~callbacks.lr_monitor",
        "~callbacks.progress_bar",
        f"hydra.run.dir={folder}",
        f"hydra.sweep.dir={folder}",
        *extra,
    ]


def run_all(commands: list[list[str]], policy: dict[str, str]) -> float:
    """Start every command at once in the environment `policy`; the wall-clock seconds until all have ended."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    env.update(policy)
    start = time.perf_counter()
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands
    ]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(process.args)} failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("measure", choices=("quiet", "pair", "sweep"))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.measure == "quiet":
            epochs = args.epochs or 2
            times = {name: [] for name in POLICIES}
            for round_ in range(args.rounds):  # interleaved, so that drift hits both alike
                for name, policy in POLICIES.items():
                    times[name].append(run_all([train_command(folder / f"{name}{round_}", epochs)], policy))
                    print(f"round {round_} {name}: {times[name][-1]:.1f} s", flush=True)
            for name in ("ours", "passive"):
                ratio = statistics.median(times[name]) / statistics.median(times["default"])
                print(f"alone, {epochs} epochs: {name} / default = x{ratio:.3f} (medians of {args.rounds})")
        elif args.measure == "pair":
            epochs = args.epochs or 1
            alone = run_all([train_command(folder / "alone", epochs)], POLICIES["ours"])
            print(f"one run alone (ours): {alone:.1f} s", flush=True)
            for name, policy in POLICIES.items():
                both = run_all([train_command(folder / f"{name}{i}", epochs) for i in range(2)], policy)
                print(f"two at once, {name}: {both:.1f} s = x{both / alone:.2f} one run alone", flush=True)
        else:
            epochs = args.epochs or 10
            seeds = "seed=1,2"
            one_after = run_all(
                [train_command(folder / "basic", epochs, seeds, multirun=True)], POLICIES["ours"]
            )
            print(f"basic launcher (one after the other): {one_after:.1f} s", flush=True)
            joblib = [seeds, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
            together = run_all(
                [train_command(folder / "joblib", epochs, *joblib, multirun=True)], POLICIES["ours"]
            )
            print(f"joblib n_jobs=2: {together:.1f} s = x{together / one_after:.3f} one after the other")


if __name__ == "__main__":
    main()
