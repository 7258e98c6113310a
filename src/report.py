"""Compare the jobs of a sweep: `python -m src.report outputs/<task>/multiruns/<date>_<time> [--out DIR]`.

Prints a markdown table of the jobs ranked by best validation BLEU (overrides, BLEU, epochs, wall time,
parameters, status; failed jobs with their error) and writes report.md, report.csv and report.png (best
BLEU per job, and the validation-BLEU curves of all jobs) into the folder, or into --out.
"""

import argparse
from pathlib import Path

import matplotlib.pyplot as plt

from src.entry import user_errors_exit
from src.sweep_results import collect_runs, markdown_table, report_figure, write_csv


def report(folder: Path, out: Path | None = None) -> list[Path]:
    """Write report.md, report.csv and report.png for the runs under `folder`; returns their paths."""
    runs = collect_runs(folder)
    out = out or folder
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(runs)
    print(table)
    paths = [out / "report.md", out / "report.csv", out / "report.png"]
    paths[0].write_text(table, encoding="utf-8")
    write_csv(runs, paths[1])
    figure = report_figure(runs)
    figure.savefig(paths[2], dpi=120)
    plt.close(figure)
    return paths


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a multirun folder (or any folder of runs)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the files (default: the folder)"
    )
    args = parser.parse_args(argv)
    paths = report(args.folder, args.out)
    print("Wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
