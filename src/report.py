"""Compare the jobs of a sweep: `python -m src.report outputs/<task>/multiruns/<date>_<time> [--out DIR]`.

Prints a markdown table of the jobs ranked by best validation BLEU (overrides, BLEU, epochs, wall time,
parameters, status; failed jobs with their error) and writes report.md, report.csv and report.png (best
BLEU per job, and the validation-BLEU curves of all jobs) into the folder, or into --out; for jobs that were
tested, also report_by_length.png: the test score (exact match when every job has it, else BLEU) against
source length, one curve per job.
"""

import argparse
from pathlib import Path

from src.entry import user_errors_exit
from src.plotting import length_figure, save_figure
from src.sweep_results import collect_runs, markdown_table, report_figure, write_csv


def report(folder: Path, out: Path | None = None) -> list[Path]:
    """Write report.md, report.csv, report.png (and report_by_length.png) for the runs under `folder`;
    returns their paths."""
    runs = collect_runs(folder)
    out = out or folder
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(runs)
    print(table)
    paths = [out / "report.md", out / "report.csv", out / "report.png"]
    paths[0].write_text(table, encoding="utf-8")
    write_csv(runs, paths[1])
    save_figure(report_figure(runs), paths[2])
    curves = {run.name: run.summary.test_by_length for run in runs if run.summary.test_by_length}
    if curves:  # the test scores by source length of every run that was tested
        metric = (
            "exact_match"
            if all(any("exact_match" in r for r in rows) for rows in curves.values())
            else "bleu"
        )
        paths.append(out / "report_by_length.png")
        title = f"test {metric.replace('_', ' ')} by source length"
        save_figure(length_figure(curves, metric, title=title), paths[-1])
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
