"""The alignment study (docs/ALIGNMENT.md, "Results"): every extraction method of `python -m src.align` on the
gold set for each trained run, the eflomal baseline beside them, the AER the runs logged while training, and
one figure. Run it on a quiet machine once the runs have finished:

    python scripts/alignment_study.py outputs/study/tatoeba_transformer_5k outputs/study/tatoeba_transformer_guided_5k \
        --figure docs/images/tatoeba_alignment.png

For each run folder and method it runs, as a user would,
`python -m src.align ckpt_path=<run>/checkpoints/best.ckpt input=<gold dir>/dev.src-tgt gold=<gold dir>/dev.gold
method=<method> hydra.run.dir=<run>/alignment/<method>` (with `baseline=eflomal` once, for the first run), reads
the `scores.json` each writes, and prints a markdown table: per run and method, the AER of the mean over heads
of the last layer (what `src.align` writes by default), of the mean over everything, and of the best layer and
head; then the run's test BLEU (greedy, from its summary.json). The figure: AER against training steps (the
`attention/aer` each run logged with `callbacks.alignment_error`), eflomal's as a line, and the AER by layer
and head of each run (`--grid-method`, default argmax).

`--symmetrize FORWARD REVERSE` (repeatable) adds a second table: the forward run's model with the reverse run's
(trained with `data.reverse=true`) as `reverse_ckpt_path`, every method, the AER of each direction and of each
symmetrisation (intersection, union, grow-diag-final). Give a reverse run only there, not among the runs:
`src.align` reads the gold pairs as the forward model's.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

METHODS = ("argmax", "threshold", "shift")


SYMMETRIZED = ("forward", "reverse", "intersection", "union", "grow-diag-final")


def align(run: Path, method: str, gold_dir: Path, baseline: bool, reverse: Path | None = None) -> dict:
    """Run `python -m src.align` for one run and method (with `reverse`: that run's model as the reverse
    model); its scores.json."""
    out = run / "alignment" / (method if reverse is None else f"{method}_symmetrized_{reverse.name}")
    shutil.rmtree(out, ignore_errors=True)  # a fresh folder: align.log appends
    command = [
        sys.executable,
        "-m",
        "src.align",
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        f"input={gold_dir / 'dev.src-tgt'}",
        f"gold={gold_dir / 'dev.gold'}",
        f"method={method}",
        f"hydra.run.dir={out}",
        *(["baseline=eflomal"] if baseline else []),
        *([f"reverse_ckpt_path={reverse / 'checkpoints' / 'best.ckpt'}"] if reverse is not None else []),
    ]
    print("$ python", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "scores.json").read_text(encoding="utf-8"))


def cell(scores: dict, layer: str, head: str) -> float:
    (found,) = (
        s["aer"] for s in scores["by_layer_head"] if str(s["layer"]) == layer and str(s["head"]) == head
    )
    return found


def aer_curve(run: Path) -> tuple[list[int], list[float]]:
    """The `attention/aer` the run logged at each validation."""
    points = []
    for events in sorted((run / "tensorboard").glob("events.out.tfevents.*")):  # training, then testing
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "attention/aer" in accumulator.Tags()["scalars"]:
            points += accumulator.Scalars("attention/aer")
    return [p.step for p in points], [p.value for p in points]


def test_bleu(run: Path) -> float | None:
    summary = run / "summary.json"  # none while the run is still training
    return json.loads(summary.read_text(encoding="utf-8")).get("test_bleu") if summary.exists() else None


def figure(
    runs: list[Path], scores: dict, eflomal: float, path: Path, method: str, curves: list[Path]
) -> None:
    """AER while training of `runs` and `curves` (reverse runs, whose callback read the gold turned round),
    and the AER by layer and head of each run with several heads."""
    gridded = [run for run in runs if "by_layer_head" in scores[run.name][method]]  # several heads
    columns = 1 + len(gridded)
    fig, axes = plt.subplots(
        1, columns, figsize=(5.0 * columns, 3.8), gridspec_kw={"wspace": 0.5}, squeeze=False
    )
    axes = axes[0]
    for run in [*runs, *(run for run in curves if run not in runs)]:
        steps, values = aer_curve(run)
        axes[0].plot(steps, values, marker="o", label=run.name)
    axes[0].axhline(eflomal, color="grey", linestyle="--", label=f"eflomal {eflomal:.1f}")
    axes[0].set(xlabel="training step", ylabel="AER (%)", title="AER while training (argmax, mean of heads)")
    axes[0].legend(fontsize=8)
    for ax, run in zip(axes[1:], gridded, strict=True):
        by_cell = scores[run.name][method]["by_layer_head"]
        layers = sorted({s["layer"] for s in by_cell if s["layer"] != "mean"})
        heads = sorted({s["head"] for s in by_cell if s["head"] != "mean"})
        rows, cols = [*map(str, layers), "mean"], [*map(str, heads), "mean"]
        grid = [[cell(scores[run.name][method], r, c) for c in cols] for r in rows]
        image = ax.imshow(grid, cmap="viridis_r", vmin=0, vmax=100)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if value < 50 else "black")  # fmt: skip
        ax.set(xticks=range(len(cols)), xticklabels=cols, yticks=range(len(rows)), yticklabels=rows,
               xlabel="head", ylabel="decoder layer", title=f"AER by layer × head, {method}\n{run.name}")  # fmt: skip
    if gridded:
        fig.colorbar(image, ax=axes[1:], shrink=0.8, label="AER (%)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (with checkpoints/best.ckpt)")
    parser.add_argument("--gold-dir", type=Path, default=Path("../shared/data/align-enfr"))
    parser.add_argument("--figure", type=Path, default=None)
    parser.add_argument("--grid-method", choices=METHODS, default="argmax", help="the method of the heatmaps")
    parser.add_argument(
        "--symmetrize", nargs=2, action="append", type=Path, default=[], metavar=("FORWARD", "REVERSE"),
        help="a forward run and a reverse run (data.reverse=true): every direction and symmetrisation",
    )  # fmt: skip
    args = parser.parse_args()

    scores: dict[str, dict[str, dict]] = {}
    eflomal = None
    for number, run in enumerate(args.runs):
        scores[run.name] = {}
        for method in METHODS:
            result = align(run, method, args.gold_dir, baseline=number == 0 and method == "argmax")
            scores[run.name][method] = result
            if "eflomal" in result["directions"]:
                eflomal = result["directions"]["eflomal"]
    print("\n| run | method | AER, last layer, mean of heads | AER, mean of all | best layer, head: AER | "
          "precision | recall | test BLEU (greedy) |")  # fmt: skip
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for run in args.runs:
        bleu = test_bleu(run)
        for method in METHODS:
            result = scores[run.name][method]
            if "by_layer_head" in result:
                top = result["best_layer_head"]
                mean, best = cell(result, "mean", "mean"), f"{top['layer']}, {top['head']}: {top['aer']:.1f}"
            else:  # one layer of one head (a recurrent model with single-head attention)
                mean, best = result["aer"], "(one head)"
            print(
                f"| {run.name} | `{method}` | {result['aer']:.1f} | {mean:.1f} | {best} | "
                f"{result['precision']:.1f} | {result['recall']:.1f} | {bleu if bleu is None else f'{bleu:.2f}'} |"
            )
    if eflomal is not None:
        print(f"| eflomal (Tatoeba train + the pairs, grow-diag-final) | | {eflomal['aer']:.1f} | | | "
              f"{eflomal['precision']:.1f} | {eflomal['recall']:.1f} | |")  # fmt: skip
    for forward, reverse in args.symmetrize:
        print(f"\n{forward.name} with {reverse.name} as the reverse model (AER / precision / recall):\n")
        print("| method | " + " | ".join(SYMMETRIZED) + " |")
        print("| --- |" + " ---: |" * len(SYMMETRIZED))
        for method in METHODS:
            directions = align(forward, method, args.gold_dir, baseline=False, reverse=reverse)["directions"]
            cells = [
                f"{d['aer']:.1f} / {d['precision']:.1f} / {d['recall']:.1f}"
                for d in (directions[name] for name in SYMMETRIZED)
            ]
            print(f"| `{method}` | " + " | ".join(cells) + " |")
    if args.figure and eflomal is not None:
        reverse_runs = [reverse for _, reverse in args.symmetrize]
        figure(args.runs, scores, eflomal["aer"], args.figure, args.grid_method, reverse_runs)
        print(f"\nFigure: {args.figure}")


if __name__ == "__main__":
    main()
