"""The attention study's table: every trained model of a folder of runs, tested the same way, side by side.

    python -m src.study outputs/study_multi30k/multiruns/<date>_<time> [--baseline attention=none]
    python -m src.study outputs/study docs/results/multi30k --archive docs/results/multi30k

For every completed run under the folder (a multirun, or any folder of runs) it decodes the run's test set
with the best checkpoint, greedy and with beam search, and scores it exactly as `python -m src.evaluate`
does (sacrebleu BLEU and chrF with their signatures, per source-length bucket too). Runs that differ only
in `seed=` form one row: the mean and the standard deviation over the seeds. Each row is compared with the
baseline row by sacrebleu's paired bootstrap resampling (Koehn 2004) on the beam-search BLEU: the two
rows' hypotheses are paired by seed and sentence (the seeds both rows have), and the p-value is the share
of resampled test sets on which the row does not beat the baseline by more than by chance (sacrebleu's
definition). Also per row: parameters, epochs and training time to the best checkpoint, training target
tokens/s, greedy and beam sentences/s, and the attention's entropy, monotonicity and coverage on the test
set (greedy outputs; `src.callbacks.attention_measures`). With `--attribution N`: how well the attention agrees
with integrated gradients on the first N test sentences (`python -m src.analyze attribution`: the mean rank
correlation per output token, and how often both put the same source token first).

Writes `study.md`, `study.csv`, `study_bleu.png` (test BLEU per row) and `study_by_length.png` (BLEU
against source length, one curve per row, error bars over seeds) into the first folder (or `--out`). Decoding
results are cached in each run's `study/` folder, so a second report (another baseline) decodes nothing.

A study outlives its checkpoints: `--archive DIR` copies what the table needs of each completed run (its
`.hydra/` files, `summary.json` and the cached decodings, hypotheses included; no checkpoint, no event file:
about 100 kB a run, compressed) into `DIR/<run>/`, and a run folder without checkpoints but with those
files is read as an archived run: its row, its seeds and its paired test against another row come from the
archived hypotheses. So rows trained on different days (or machines) form one table: give the folders of
live runs and the archive together. A run found in two folders (a run and its archive: the same folder name
and overrides) counts once, from the first folder given.
"""

import argparse
import csv
import dataclasses
import gzip
import json
import logging
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sacrebleu
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from sacrebleu.significance import PairedTest

from src.analyze import analyze_attribution
from src.callbacks.attention_measures import mean_measures
from src.checkpoint import load_translator, read_test_pairs
from src.config import PROJECT_ROOT, register_resolvers
from src.entry import user_errors_exit
from src.errors import ConfigError
from src.evaluate import score_translations
from src.plotting import length_figure, plt, save_figure
from src.sweep_results import collect_runs

log = logging.getLogger("seq2seq-lab")
register_resolvers()

# overrides that say where a run ran (or resumed from); with the seed, the data's paths and the progress bar
# (display only): not the model
_LOCATIONS = ("task_name=", "hydra.", "paths.", "ckpt_path=")
_NOT_THE_MODEL = ("seed=", *_LOCATIONS, "trainer.max_time=", "data.train_path=", "data.valid_path=",
                  "data.test_path=", "callbacks.progress_bar")  # fmt: skip
LENGTH_BUCKETS = [10, 20, 30, 40, 50]
CACHE_DIR = "study"
# what `--archive` keeps of a run: enough for its row (the decodings are compressed on the way)
ARCHIVED = (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "summary.json")


@dataclass
class Decoded:
    """One run's test set decoded with one search (cached in `<run>/study/<search>.json`)."""

    bleu: float
    chrf: float
    bleu_signature: str
    sentences_per_second: float | None
    hypotheses: list[str]
    references: list[str]
    by_length: list[dict[str, Any]]
    attention: dict[str, float] = field(default_factory=dict)


@dataclass
class Job:
    folder: Path
    model: str  # the row: the run's overrides without seed (and without where it ran)
    seed: int
    summary: Any
    greedy: Decoded
    beam: Decoded
    attribution: dict[str, Any] | None = None  # attention against integrated gradients (`--attribution`)


def model_name(overrides: list[str], varying: set[str] | None = None) -> str:
    """A row's name: the run's overrides without seed and where it ran; with `varying`, only the options
    that differ between the runs of the study (what the grid swept)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_NOT_THE_MODEL)]
    if varying is not None:
        kept = [o for o in kept if _key(o) in varying]
    return ",".join(kept) or "(defaults)"


def _locates(override: str) -> bool:
    """An override that says where a run ran (or resumed from), not what it trained."""
    return override.lstrip("+~").startswith(_LOCATIONS)


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def varying_options(runs_overrides: list[list[str]]) -> set[str]:
    """The options whose value is not the same in every run (seed and locations left out)."""
    given = [
        {_key(o): o for o in overrides if not o.lstrip("+~").startswith(_NOT_THE_MODEL)}
        for overrides in runs_overrides
    ]
    keys = set().union(*given)
    # an option one run sets and another does not varies too, whichever run comes first
    return {key for key in keys if len({run.get(key) for run in given}) > 1}


def decode_run(
    folder: Path, beam_size: int, test_path: str | None, refresh: bool = False
) -> tuple[Decoded, Decoded]:
    """Greedy and beam decodings of a run's test set with its best checkpoint (from the cache if fresh)."""
    ckpt = folder / "checkpoints" / "best.ckpt"
    cache = folder / CACHE_DIR
    if not ckpt.is_file():  # an archived run: its decodings are all there is
        return _archived(cache, "greedy", test_path), _archived(cache, f"beam{beam_size}", test_path)
    stamp = f"{ckpt.stat().st_mtime_ns}:{ckpt.stat().st_size}:{test_path}"
    results = []
    test_set = None  # the model and the test file, read once for both searches (only when not cached)
    for search, beam in (("greedy", 1), (f"beam{beam_size}", beam_size)):
        path = cache / f"{search}.json"
        if path.is_file() and not refresh:
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("stamp") == stamp:
                results.append(Decoded(**saved["decoded"]))
                continue
        test_set = test_set or TestSet.load(ckpt, test_path)
        results.append(test_set.decode(beam))
        cache.mkdir(exist_ok=True)
        path.write_text(
            json.dumps({"stamp": stamp, "decoded": results[-1].__dict__}) + "\n", encoding="utf-8"
        )
    return results[0], results[1]


def is_archived(folder: Path) -> bool:
    """A run folder `--archive` wrote: no checkpoint, the compressed decodings."""
    return not (folder / "checkpoints").is_dir() and (folder / CACHE_DIR / "greedy.json.gz").is_file()


def _read_archived(path: Path) -> Any:
    """A compressed JSON file of an archived run."""
    return json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))


def _tested_on(stamp: str) -> str:
    """The test file of a cached result's stamp (`<checkpoint mtime>:<size>:<test path>`)."""
    return stamp.split(":", 2)[2]


def _which_test(test_path: str | None) -> str:
    return "its own test split" if test_path in (None, "None") else str(test_path)


def _archived(cache: Path, search: str, test_path: str | None) -> Decoded:
    path = cache / f"{search}.json.gz"
    if not path.is_file():
        searches = sorted(p.name.removesuffix(".json.gz") for p in cache.glob("*.json.gz"))
        beams = [s.removeprefix("beam") for s in searches if s.startswith("beam")]
        fix = f"give --beam {' or '.join(beams)}" if beams else "archive it again from its run folder"
        raise ConfigError(
            f"{cache.parent} is an archived run (no checkpoint) without a {search} decoding; it has "
            f"{', '.join(searches) or 'none'}: {fix}, or leave the folder out."
        )
    saved = _read_archived(path)
    tested_on = _tested_on(saved["stamp"])
    if tested_on != str(test_path):  # "None": the run's own test split
        fix = "leave --test-path out" if tested_on == "None" else f"give --test-path {tested_on}"
        raise ConfigError(
            f"{cache.parent} is an archived run tested on {_which_test(tested_on)}, not on "
            f"{_which_test(test_path)}, and it cannot be decoded again (no checkpoint): {fix}, or leave the "
            "folder out."
        )
    return Decoded(**saved["decoded"])


def archive_run(folder: Path, archive: Path, beam_size: int, attribution: int) -> Path:
    """Copy what the study's row needs of a run into `archive/<run>/`: ARCHIVED, and its greedy and beam
    decodings and (`attribution` > 0) its attribution, compressed. The folder is written whole and then put
    in place, so an archive is never half there (its summary.json marks it done for the queue), and archiving
    again replaces it."""
    folder = folder.resolve()
    target = archive / folder.name
    partial = archive / f".{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for name in ARCHIVED:
        if (folder / name).is_file():
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            (partial / name).write_bytes((folder / name).read_bytes())
    kept = ["greedy.json", f"beam{beam_size}.json"]
    if attribution:
        kept += ["attribution/attribution.json", "attribution/study_stamp.json"]
    for relative in kept:
        path = folder / CACHE_DIR / relative
        (partial / CACHE_DIR / relative).parent.mkdir(parents=True, exist_ok=True)
        # mtime=0: the same decoding compresses to the same bytes, so archiving again changes no file
        (partial / CACHE_DIR / f"{relative}.gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


@dataclass
class TestSet:
    """A run's best model and its test file, loaded once and decoded with each search."""

    name: str
    translator: Any
    sources: tuple[str, ...]
    references: tuple[str, ...]
    bleu_tokenize: str

    @classmethod
    def load(cls, ckpt: Path, test_path: str | None) -> "TestSet":
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
            cfg = compose("evaluate")
        cfg.ckpt_path = str(ckpt)  # not an override: job folders have `=` and `,` in their names
        translator, train_config = load_translator(cfg)
        _, pairs = read_test_pairs(test_path, train_config, option="--test-path")
        sources, references = zip(*pairs, strict=True)
        bleu_tokenize = train_config.get("model", {}).get("bleu_tokenize", "13a")
        return cls(ckpt.parent.parent.name, translator, sources, references, bleu_tokenize)

    def decode(self, beam_size: int) -> "Decoded":
        self.translator.generator = dataclasses.replace(self.translator.generator, beam_size=beam_size)
        log.info("%s: decoding %d sentences (beam %d)", self.name, len(self.sources), beam_size)
        scored = score_translations(
            self.translator, self.sources, self.references, self.bleu_tokenize, LENGTH_BUCKETS
        )
        attentions = [
            h.attention.float().mean(dim=0) for h in scored.best if h.attention is not None and h.tokens
        ]
        return Decoded(
            bleu=scored.scores["bleu"],
            chrf=scored.scores["chrf"],
            bleu_signature=scored.scores["bleu_signature"],
            sentences_per_second=scored.scores["sentences_per_second"],
            hypotheses=scored.hypotheses,
            references=scored.references,
            by_length=scored.by_length,
            attention=mean_measures(attentions) if beam_size == 1 else {},
        )


def attribute_run(
    folder: Path, sentences: int, test_path: str | None, refresh: bool = False
) -> dict[str, Any] | None:
    """`python -m src.analyze attribution` on a run's best checkpoint and the first `sentences` test sentences,
    into `<run>/study/attribution/` (from there if fresh): the summary of integrated gradients (of an
    archived run: what it archived, None if nothing for as many sentences)."""
    ckpt = folder / "checkpoints" / "best.ckpt"
    out = folder / CACHE_DIR / "attribution"
    if not ckpt.is_file():  # an archived run: its attribution as it was, if of the same sentences
        path, stamp_path = out / "attribution.json.gz", out / "study_stamp.json.gz"
        if not (path.is_file() and stamp_path.is_file()):
            log.warning("%s: archived without an attribution: its attribution columns are empty", folder)
            return None
        stamp = _read_archived(stamp_path)
        archived_path, archived_sentences = _tested_on(stamp).rsplit(":", 1)
        if (archived_path, int(archived_sentences)) != (str(test_path), sentences):
            log.warning("%s: archived attribution of the first %s sentences of %s, not %d of %s: left out",
                        folder, archived_sentences, _which_test(archived_path), sentences,
                        _which_test(test_path))  # fmt: skip
            return None
        result = _read_archived(path)
        return result["methods"]["integrated_gradients"] | {"attention": result["attention"]}
    stamp = f"{ckpt.stat().st_mtime_ns}:{ckpt.stat().st_size}:{test_path}:{sentences}"
    cached = out / "study_stamp.json"
    if not refresh and cached.is_file() and json.loads(cached.read_text(encoding="utf-8")) == stamp:
        result = json.loads((out / "attribution.json").read_text(encoding="utf-8"))
    else:
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
            cfg = compose("analyze", ["analysis=attribution", f"attribution.max_sentences={sentences}"])
        # set, not overridden: job folders have `=` and `,` in their names
        cfg.ckpt_path, cfg.paths.output_dir, cfg.data.test_path = str(ckpt), str(out), test_path
        with torch.enable_grad():
            result = analyze_attribution(cfg)
        cached.write_text(json.dumps(stamp) + "\n", encoding="utf-8")
    return result["methods"]["integrated_gradients"] | {"attention": result["attention"]}


def collect_jobs(
    folders: list[Path], beam_size: int, test_path: str | None, refresh: bool, attribution: int = 0
) -> list[Job]:
    """The completed runs of the folders (live ones with a best checkpoint, archived ones); a run found twice
    (a run and its archive: the same folder name and overrides) counts once, from the first folder given."""
    runs = []
    for folder in folders:
        try:
            found = collect_runs(folder)
        except ConfigError as error:  # one of several folders (an archive not written yet) may be empty
            if len(folders) == 1:
                raise
            log.warning("%s", error)
            continue
        for run in found:
            has_model = (run.folder / "checkpoints" / "best.ckpt").is_file() or is_archived(run.folder)
            if run.summary.status != "completed" or not has_model:
                log.warning("%s: %s, no best checkpoint (nor, archived, its decodings): left out", run.folder,
                            run.summary.status)  # fmt: skip
            else:
                runs.append(run)
    # rows are named by what varies among the runs of the table: a run left out does not rename them
    varying = varying_options([run.overrides for run in runs])
    jobs: list[Job] = []
    seen: dict[tuple[str, tuple[str, ...]], Path] = {}
    for run in runs:
        config = OmegaConf.load(run.folder / ".hydra" / "config.yaml")
        name = model_name(run.overrides, varying if len(runs) > 1 else None)
        # a run and its archive: the same folder name and the same overrides (but where each ran)
        identity = (run.folder.resolve().name, tuple(sorted(o for o in run.overrides if not _locates(o))))
        if identity in seen:
            log.info("%s is the run of %s: left out", run.folder, seen[identity])
            continue
        seen[identity] = run.folder
        greedy, beam = decode_run(run.folder, beam_size, test_path, refresh)
        attributed = attribute_run(run.folder, attribution, test_path, refresh) if attribution else None
        jobs.append(Job(run.folder, name, int(config.seed), run.summary, greedy, beam, attributed))
    if not jobs:
        raise ConfigError(f"No completed run with a best checkpoint under {', '.join(map(str, folders))}.")
    return jobs


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def paired_p_value(baseline: list[Job], row: list[Job], n_samples: int) -> float | None:
    """Paired bootstrap p-value of the row's beam BLEU against the baseline's, over the seeds both have;
    None where they share no seed or were not tested on the same references."""
    seeds = sorted({j.seed for j in baseline} & {j.seed for j in row})
    if not seeds:
        return None
    by_seed = {j.seed: j for j in baseline}, {j.seed: j for j in row}
    base_hyps = [h for s in seeds for h in by_seed[0][s].beam.hypotheses]
    row_hyps = [h for s in seeds for h in by_seed[1][s].beam.hypotheses]
    references = [r for s in seeds for r in by_seed[0][s].beam.references]
    if [r for s in seeds for r in by_seed[1][s].beam.references] != references:
        return None  # another test set (or direction, data.reverse): nothing to pair
    signature = by_seed[0][seeds[0]].beam.bleu_signature
    metric = sacrebleu.BLEU(
        tokenize=_signature_field(signature, "tok", "13a"),
        lowercase=_signature_field(signature, "case") == "lc",
    )
    test = PairedTest(
        [("baseline", base_hyps), ("row", row_hyps)], {"BLEU": metric}, [references], "bs", n_samples
    )
    _, scores = test()
    return float(scores["BLEU"][1].p_value)


def _signature_field(signature: str, key: str, default: str = "") -> str:
    for part in signature.split("|"):
        if part.startswith(f"{key}:"):
            return part.split(":", 1)[1]
    return default


def baseline_row(baseline: str, rows: list[str]) -> str:
    """The row `--baseline` names: the row of that name, or the one row whose overrides include all of the
    given ones (`attention=none` is `experiment=study_multi30k,attention=none` when the experiment varies)."""
    if baseline in rows:
        return baseline
    wanted = set(baseline.split(","))
    matches = [row for row in rows if wanted <= set(row.split(","))]
    if len(matches) == 1:
        return matches[0]
    what = "names more than one row" if matches else "is not a row"
    raise ConfigError(f"--baseline {baseline!r} {what}; the rows are: {', '.join(rows)}")


def rows_of(jobs: list[Job], baseline: str | None, n_samples: int) -> list[dict[str, Any]]:
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.model, []).append(job)
    baseline = None if baseline is None else baseline_row(baseline, list(groups))
    rows = []
    for model, members in groups.items():
        members.sort(key=lambda j: j.seed)
        row: dict[str, Any] = {"model": model, "seeds": [j.seed for j in members]}
        values = {
            "bleu": [j.beam.bleu for j in members],
            "chrf": [j.beam.chrf for j in members],
            "greedy_bleu": [j.greedy.bleu for j in members],
            "parameters": [j.summary.num_parameters for j in members],
            "best_epoch": [getattr(j.summary, "best_epoch", None) for j in members],
            "time_to_best_min": [_time_to_best(j.summary) for j in members],
            "train_tokens_per_s": [getattr(j.summary, "train_tokens_per_s", None) for j in members],
            "greedy_sentences_per_s": [j.greedy.sentences_per_second for j in members],
            "beam_sentences_per_s": [j.beam.sentences_per_second for j in members],
            **{
                m: [j.greedy.attention.get(m) for j in members]
                for m in ("entropy", "monotonicity", "coverage")
            },
            **{
                f"ig_{key}": [(j.attribution or {}).get(key) for j in members]
                for key in ("spearman", "top_agreement")
            },
        }
        for key, series in values.items():
            row[key], row[f"{key}_std"] = mean_std(series)
        row["bleu_signature"] = members[0].beam.bleu_signature
        row["by_length"] = _mean_by_length([j.beam.by_length for j in members])
        if baseline is not None and model != baseline:
            row["p_value"] = paired_p_value(groups[baseline], members, n_samples)
        rows.append(row)
    return rows


def _time_to_best(summary: Any) -> float | None:
    """Training minutes until the best checkpoint's step, prorated from the run's training time."""
    train_s, best, steps = (getattr(summary, k, None) for k in ("train_time_s", "best_step", "steps"))
    if not train_s or best is None or not steps:
        return None
    return train_s * best / steps / 60


def _mean_by_length(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for buckets in zip(*runs, strict=True):
        mean, std = mean_std([b["bleu"] for b in buckets])
        rows.append({**buckets[0], "bleu": mean, "bleu_std": std})
    return rows


COLUMNS = [
    ("model", "model", None),
    ("seeds", "seeds", None),
    ("bleu", "test BLEU (beam)", 2),
    ("chrf", "chrF (beam)", 2),
    ("greedy_bleu", "BLEU (greedy)", 2),
    ("p_value", "p vs baseline", 3),
    ("parameters", "parameters", 0),
    ("best_epoch", "epochs to best", 1),
    ("time_to_best_min", "min to best", 0),
    ("train_tokens_per_s", "train tok/s", 0),
    ("greedy_sentences_per_s", "greedy sent/s", 0),
    ("beam_sentences_per_s", "beam sent/s", 0),
    ("entropy", "entropy", 2),
    ("monotonicity", "monotonicity", 2),
    ("coverage", "coverage", 2),
    ("ig_spearman", "attn~IG ρ", 2),
    ("ig_top_agreement", "attn=IG top-1", 2),
]


def _cell(row: dict[str, Any], key: str, digits: int | None) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if key == "seeds":
        return ",".join(map(str, value))
    if digits is None:
        return str(value)
    text = f"{value:,.{digits}f}"
    std = row.get(f"{key}_std")
    return f"{text} ± {std:,.{digits}f}" if std is not None else text


def markdown(rows: list[dict[str, Any]], baseline: str | None) -> str:
    lines = [
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "| " + " | ".join("---" if digits is None else "---:" for _, _, digits in COLUMNS) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, key, digits) for key, _, digits in COLUMNS) + " |")
    notes = [f"BLEU signature: `{rows[0]['bleu_signature']}`. Mean ± standard deviation over seeds."]
    if baseline is not None:
        notes.append(f"p: paired bootstrap resampling of the beam BLEU against `{baseline}` (sacrebleu).")
    return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"


def provenance(jobs: list[Job]) -> str:
    """Where each run of the table trained (summary.json's `machine`), one line per run."""
    lines = ["Where each run trained (its summary.json):", ""]
    for job in sorted(jobs, key=lambda j: (j.model, j.seed)):
        trained = job.summary.machine or {}
        where = (
            f"{trained.get('cpu', '?')} ({trained.get('cpu_family', '?')}), torch threads "
            f"{trained.get('threads', '?')}, commit {trained.get('commit') or '?'}, started {trained.get('started', '?')}"
            if trained
            else "not recorded (trained before runs recorded their machine)"
        )
        archived = " (archived)" if is_archived(job.folder) else ""
        lines.append(f"- `{job.folder.name}`{archived}: {job.model}, seed {job.seed}: {where}")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = [key for key, _, _ in COLUMNS] + [f"{key}_std" for key, _, d in COLUMNS if d is not None]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=[*keys, "bleu_signature"], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "seeds": " ".join(map(str, row["seeds"]))})


def bleu_figure(rows: list[dict[str, Any]]) -> Any:
    figure, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(rows) + 2), 4.0))
    names = [row["model"] for row in rows]
    ax.bar(
        range(len(rows)),
        [row["bleu"] for row in rows],
        yerr=[row["bleu_std"] or 0 for row in rows],
        capsize=3,
    )
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    ax.set_ylabel("test BLEU (beam)")
    figure.tight_layout()
    return figure


def study(folder: Path | list[Path], baseline: str | None, beam_size: int, out: Path | None,
          test_path: str | None, n_samples: int = 1000, refresh: bool = False, attribution: int = 0,
          archive: Path | None = None) -> list[Path]:  # fmt: skip
    """The study's table of the runs under `folder` (or several folders), written into `out` (default: the
    first folder); with `archive`, each live run's row is also archived there (`archive_run`)."""
    folders = [folder] if isinstance(folder, Path) else list(folder)
    torch.set_grad_enabled(False)
    jobs = collect_jobs(folders, beam_size, test_path, refresh, attribution)
    if archive is not None:
        for job in jobs:
            if not is_archived(job.folder):
                log.info("archived %s", archive_run(job.folder, archive, beam_size, attribution))
    rows = rows_of(jobs, baseline, n_samples)
    rows.sort(key=lambda row: -(row["bleu"] or 0))
    out = out or folders[0]
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, baseline) + "\n" + provenance(jobs)
    print(table)
    paths = [out / "study.md", out / "study.csv", out / "study_bleu.png", out / "study_by_length.png"]
    paths[0].write_text(table, encoding="utf-8")
    write_csv(rows, paths[1])
    save_figure(bleu_figure(rows), paths[2])
    curves = {row["model"]: row["by_length"] for row in rows}
    errors = {row["model"]: [b.get("bleu_std") for b in row["by_length"]] for row in rows}
    save_figure(length_figure(curves, "bleu", errors, title="test BLEU by source length"), paths[3])
    (out / "study.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return [*paths, out / "study.json"]


@user_errors_exit
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m src.study", description=__doc__.split("\n")[0])
    parser.add_argument(
        "folder", type=Path, nargs="+",
        help="a multirun folder (or any folder of runs, live or archived); several form one table",
    )  # fmt: skip
    parser.add_argument(
        "--baseline", default=None, help="the row the others are tested against, e.g. attention=none"
    )
    parser.add_argument("--beam", type=int, default=5, help="beam size of the test decoding (default 5)")
    parser.add_argument(
        "--test-path", default=None, help="the test file (default: each run's own test split)"
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument(
        "--refresh", action="store_true", help="decode again even where a cached result exists"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the files (default: the first folder)"
    )
    parser.add_argument(
        "--archive", type=Path, default=None, metavar="DIR",
        help="also copy each live run's row (config, summary, decodings; no checkpoint) into DIR/<run>/, "
        "so that the table can be made again once the checkpoints are gone",
    )  # fmt: skip
    parser.add_argument(
        "--attribution",
        type=int,
        default=0,
        metavar="N",
        help="compare attention with integrated gradients on each run's first N test sentences "
        "(python -m src.analyze attribution; columns attn~IG ρ and attn=IG top-1); default 0: off",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = study(
        args.folder,
        args.baseline,
        args.beam,
        args.out,
        args.test_path,
        args.bootstrap,
        args.refresh,
        args.attribution,
        args.archive,
    )
    print("Wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
