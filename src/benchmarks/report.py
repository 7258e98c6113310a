"""The benchmark's results: one JSON file (every number) and a markdown table (the ones people compare)."""

import json
from pathlib import Path
from typing import Any

JSON_FILE, MARKDOWN_FILE = "bench.json", "bench.md"


def write(results: dict[str, Any], directory: Path) -> str:
    """Write `bench.json` and `bench.md` into `directory`; returns the markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / JSON_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown = to_markdown(results)
    (directory / MARKDOWN_FILE).write_text(markdown, encoding="utf-8")
    return markdown


def to_markdown(results: dict[str, Any]) -> str:
    machine, settings = results["machine"], results["settings"]
    lines = [
        f"Benchmark of `{settings['experiment']}`, {machine['started']}: {machine['cpu']} "
        f"({machine.get('cpu_family', 'family unknown')}), "
        f"{machine['threads']} torch threads, torch {machine['torch']}, precision {settings['precision']}"
        f" (float32 matmuls: {settings['float32_matmul_precision']}); "
        f"load average {machine['load_start']:.1f} at the start, {machine['load_end']:.1f} at the end "
        f"(on {machine['cpus']} CPUs; other processes slow every number alike, so compare ratios within one run).",
        "",
    ]
    if results.get("training"):
        lines += _training(results["training"], settings)
    if results.get("decoding"):
        lines += _decoding(results["decoding"], settings)
    if results.get("bleu"):
        bleu = results["bleu"]
        lines += [
            f"Validation BLEU after {bleu['budget_s'] / 60:g} min of wall clock from process start: "
            f"**{bleu['bleu']:.2f}** ({bleu['steps']} updates in {bleu['train_s']:.0f} s of training, "
            f"{_num(bleu['tokens_per_s'])} target tokens/s, {bleu['epochs']:.2f} epochs; greedy search).",
            "",
        ]
    if results.get("naive"):
        naive = results["naive"]
        lines += [
            f"Naive baseline (one sentence at a time, per-token Python loops): training "
            f"{_num(naive['tokens_per_s'])} target tokens/s ({naive['train_sentences']} sentences in "
            f"{naive['train_s']:.0f} s); greedy decoding {naive['sentences_per_s']:.1f} sentences/s "
            f"({naive['decode_sentences']} sentences, {naive['same_as_batched']:.0%} identical to the batched "
            "greedy output).",
            "",
        ]
    lines.append(f"Peak memory (RSS, ru_maxrss): {results['peak_rss_mb']:,.0f} MB.")
    return "\n".join(lines) + "\n"


def _training(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    lines = [
        f"Training, target tokens/s ({settings['warmup_steps']} warm-up batches, then "
        f"{settings['steps']} timed batches of {settings['batch_size']} sentences):",
        "",
        "| model | raw loop | Lightning | Lightning / raw | raw × naive |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    skipped = []
    for row in rows:
        raw, lightning = row.get("raw_tokens_per_s"), row.get("lightning_tokens_per_s")
        name = row["model"] + (" (not measured¹)" if row.get("skipped") else "")
        lines.append(
            f"| {name} | {_num(raw)} | {_num(lightning)} | {_ratio(lightning, raw)} "
            f"| {_times(row.get('raw_vs_naive'))} |"
        )
        if row.get("skipped"):
            skipped.append(f"¹ {row['model']}: {row['skipped']}")
    return [*lines, "", *skipped, *([""] if skipped else [])]


def _decoding(rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    lines = [
        f"Decoding the validation set ({rows[0]['sentences']:,} sentences, batches of "
        f"{settings['decode_batch_size']}, at most {settings['max_len_a']:g} x source length + "
        f"{settings['max_len_b']} tokens):",
        "",
        "| search | sentences/s | × naive greedy | BLEU |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['search']} | {_num(row['sentences_per_s'])} | {_times(row.get('vs_naive'))} "
            f"| {row['bleu']:.2f} |"
        )
    return [*lines, ""]


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "n/a" if not numerator or not denominator else f"{numerator / denominator:.2f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}×"
