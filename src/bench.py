"""Benchmark speed and quality on this machine: `python -m src.bench [key=value ...]` (see conf/bench.yaml).

One process measures, in this order (the BLEU budget counts from process start, so it comes first):
  bleu    train the reference model (`train_experiment`) with Lightning until `bleu.budget_minutes` after the
          process started; score greedy search on the validation set;
  decode  the validation set decoded with that model by each of `decode.searches` (greedy, beam, int8
          linear layers, a vocabulary shortlist, CTranslate2 for Transformers, float32 matmul precisions);
  train   training throughput of each of `train.models`: a raw PyTorch loop and the Lightning Trainer,
          interleaved over `train.rounds` rounds;
  naive   the reference model trained and decoded one sentence at a time (the tutorial way).
It writes bench.json and bench.md to outputs/bench/<date>_<time>/ and prints the tables.
"""

import dataclasses
import logging
import os
import platform
import resource
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.benchmarks import naive, report
from src.benchmarks.decoding import Decoded, decode, decode_ctranslate2
from src.benchmarks.training import build_module, lightning_throughput, raw_throughput, train_until
from src.config import register_resolvers, set_matmul_precision
from src.data.datamodule import TranslationDataModule
from src.decoding import SequenceGenerator
from src.decoding.shortlist import FLOAT_LAYERS, Shortlist
from src.entry import entry_point
from src.errors import ConfigError
from src.export import export_ctranslate2, require_ctranslate2
from src.hardware import check_precision
from src.hardware import machine as hardware_machine
from src.lit_module import TranslationModule
from src.models.quantization import quantize_int8

log = logging.getLogger("seq2seq-lab")
register_resolvers()
_IMPORTED = time.perf_counter()


def bench(cfg: DictConfig, output_dir: Path) -> str:
    """Measure the parts of `cfg.parts`; the report is rewritten after each, so a run cut short keeps
    what it measured. Returns the markdown of the report."""
    check_first_search(cfg.decode.searches[0])
    torch.set_num_threads(cfg.threads)
    warnings.filterwarnings("ignore", message=r".*`self.log\(\)`.*")  # the raw loop calls the module's steps
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # tokenize=none scores tokenised text on purpose
    deadline = time.perf_counter() + 60 * cfg.bleu.budget_minutes - process_age()
    reference = train_config(cfg, [])
    set_matmul_precision(reference)  # for every part; a model or search with its own sets it for its block
    results: dict[str, Any] = {"machine": machine(), "settings": settings(cfg, reference)}
    log.info("Reading the data <%s>", reference.data._target_)
    datamodule = instantiate(reference.data)
    datamodule.setup("fit")

    def write() -> str:
        results["peak_rss_mb"] = peak_rss_mb()
        results["machine"]["load_end"] = os.getloadavg()[0]
        return report.write(results, output_dir)

    module, greedy = None, None
    if "bleu" in cfg.parts or "decode" in cfg.parts:
        if "bleu" not in cfg.parts:  # decoding speed depends on output lengths: decode a trained model
            deadline = time.perf_counter() + 60 * cfg.decode.train_minutes
        module, greedy, trained = train_reference(cfg, reference, datamodule, deadline)
        if "bleu" in cfg.parts:
            results["bleu"] = {"budget_s": 60 * cfg.bleu.budget_minutes, "bleu": greedy.bleu, **trained}
            write()
    if "decode" in cfg.parts:
        results["decoding"] = measure_decoding(cfg, reference, module, datamodule, greedy)
        write()
    if "train" in cfg.parts:
        results["training"] = []
        for model in cfg.train.models:
            results["training"].append(measure_training(cfg, model, datamodule))
            write()
    if "naive" in cfg.parts:
        results["naive"] = measure_naive(cfg, reference, module, datamodule, greedy)
        add_naive_ratios(results)
    return write()


def train_reference(
    cfg: DictConfig, reference: DictConfig, datamodule: TranslationDataModule, deadline: float
) -> tuple[TranslationModule, Decoded, dict[str, float]]:
    """Train the reference model with Lightning until `deadline`; decode the validation set greedily.
    Returns the module, the greedy decoding and a summary of the training."""
    module = build_module(reference, datamodule, cfg.seed)
    log.info("Training the reference model until the budget is spent")
    trained = train_until(reference, module, datamodule, deadline)
    greedy = decode_validation(cfg, reference, module.net, datamodule, beam_size=1)
    return (
        module,
        greedy,
        {
            "steps": module.global_step,
            "train_s": trained.seconds,
            "tokens_per_s": trained.tokens_per_s,
            "epochs": trained.sentences / len(datamodule.datasets["train"]),
        },
    )


def train_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The training config `python -m src.train experiment=<cfg.train_experiment> <overrides>` would run."""
    return compose("train", overrides=[f"experiment={cfg.train_experiment}", *cfg.overrides, *overrides])


def decode_validation(
    cfg: DictConfig,
    reference: DictConfig,
    net: torch.nn.Module,
    datamodule: TranslationDataModule,
    beam_size: int,
    shortlist: Shortlist | None = None,
    ctranslate2_translator: Any | None = None,
) -> Decoded:
    """Decode the validation set (its first `decode.max_sentences`) with the validation length limits; with
    `ctranslate2_translator`, that engine decodes (the same model, exported: `src.export`)."""
    pairs = datamodule.datasets["valid"].pairs[: cfg.decode.max_sentences]
    generator = SequenceGenerator(
        beam_size=beam_size,
        max_len_a=reference.model.val_generator.max_len_a,
        max_len_b=reference.model.val_generator.max_len_b,
    )
    sources, references = [src for src, _ in pairs], [tgt for _, tgt in pairs]
    if ctranslate2_translator is not None:
        return decode_ctranslate2(
            ctranslate2_translator, datamodule.codec, sources, references, generator, cfg.decode.batch_size
        )
    return decode(net, datamodule.codec, sources, references, generator, cfg.decode.batch_size, shortlist)


def measure_decoding(
    cfg: DictConfig,
    reference: DictConfig,
    module: TranslationModule,
    datamodule: TranslationDataModule,
    greedy: Decoded,
) -> list[dict[str, Any]]:
    """Each of `decode.searches`, interleaved over `decode.rounds`; the fastest round counts. The first
    search is the greedy decoding that scored the BLEU part, which counts as one of its rounds."""
    # int8 nets, by whether a shortlist keeps the output layer float (as src.checkpoint.load_translator)
    int8_nets = {
        shortlisted: quantize_int8(module.net, FLOAT_LAYERS if shortlisted else ())
        for shortlisted in {
            bool(search.get("shortlist")) for search in cfg.decode.searches if search.get("int8")
        }
    }
    shortlists = {
        index: search_shortlist(cfg, search, datamodule)
        for index, search in enumerate(cfg.decode.searches)
        if search.get("shortlist")
    }
    engine = (
        exported_ctranslate2(module, datamodule)
        if any(s.get("ctranslate2") for s in cfg.decode.searches)
        else None
    )
    runs: dict[str, list[Decoded]] = {cfg.decode.searches[0].name: [greedy]}
    for _ in range(cfg.decode.rounds):
        for index, search in enumerate(cfg.decode.searches):
            log.info("Decoding the validation set: %s", search.name)
            net = int8_nets[bool(search.get("shortlist"))] if search.get("int8") else module.net
            with matmul_precision_of(search):
                decoded = decode_validation(
                    cfg,
                    reference,
                    net,
                    datamodule,
                    search.beam_size,
                    shortlists.get(index),
                    engine if search.get("ctranslate2") else None,
                )
            runs.setdefault(search.name, []).append(decoded)
    rows = []
    for name, decoded in runs.items():
        best = max(decoded, key=lambda d: d.sentences_per_s)
        rows.append(
            {
                "search": name,
                "sentences_per_s": best.sentences_per_s,
                "sentences": best.sentences,
                "bleu": best.bleu,
                "rounds_s": [d.seconds for d in decoded],
            }
        )
    return rows


def exported_ctranslate2(module: TranslationModule, datamodule: TranslationDataModule) -> Any:
    """The decoded model exported for CTranslate2 (`python -m src.export`), loaded on the CPU with this
    process's threads (the translator keeps the weights in memory; the folder is temporary)."""
    ctranslate2 = require_ctranslate2()
    with tempfile.TemporaryDirectory() as folder:
        export_ctranslate2(module.net, datamodule.codec, Path(folder) / "model")
        return ctranslate2.Translator(
            str(Path(folder) / "model"), device="cpu", inter_threads=1, intra_threads=torch.get_num_threads()
        )


def search_shortlist(cfg: DictConfig, search: DictConfig, datamodule: TranslationDataModule) -> Shortlist:
    """The shortlist of a search with `shortlist: true` (decode.shortlist) or `shortlist: {best: ...}` (its
    options over decode.shortlist's), built from the training pairs as python -m src.shortlist builds it."""
    options = {
        **cfg.decode.shortlist,
        **(search.shortlist if isinstance(search.shortlist, DictConfig) else {}),
    }
    train, codec = datamodule.datasets["train"], datamodule.codec
    return Shortlist.build(
        train.src_ids,
        train.tgt_ids,
        len(codec.src_vocab),
        len(codec.tgt_vocab),
        options["frequent"],
        options["best"],
    )


@contextmanager
def matmul_precision_of(node: DictConfig) -> Iterator[None]:
    """Run the block at `node`'s `float32_matmul_precision` when it sets one, then restore the current."""
    before = torch.get_float32_matmul_precision()
    if "float32_matmul_precision" in node:
        set_matmul_precision(node)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def check_first_search(search: DictConfig) -> None:
    """The first search counts the bleu part's decoding as a round: it must be that decoding."""
    if (
        search.beam_size != 1
        or search.get("int8")
        or search.get("shortlist")
        or search.get("ctranslate2")
        or "float32_matmul_precision" in search
    ):
        raise ConfigError(
            f"decode.searches[0] ({search.name}) must be plain greedy search ({{name: greedy, beam_size: 1}}): "
            "its first round is the greedy decoding of the bleu part. Put the other searches after it."
        )


def measure_training(cfg: DictConfig, model: DictConfig, datamodule: TranslationDataModule) -> dict[str, Any]:
    """Raw-loop and Lightning throughput of one model, interleaved over `train.rounds`; the fastest round
    of each counts."""
    config = train_config(cfg, list(model.overrides))
    try:  # a precision this machine cannot compute (bf16 on an AVX2-only CPU) is a row without numbers
        check_precision(str(config.trainer.precision), str(config.trainer.accelerator))
    except ConfigError as err:
        log.warning("Not measuring %s: %s", model.name, err)
        return {"model": model.name, "skipped": str(err)}
    module = build_module(config, datamodule, cfg.seed)
    warmup, steps = cfg.train.warmup_steps, cfg.train.steps
    raw, light = [], []
    clip, precision = config.trainer.gradient_clip_val, str(config.trainer.precision)
    with matmul_precision_of(config):
        for _ in range(cfg.train.rounds):
            log.info("Training throughput of %s: raw loop", model.name)
            raw.append(raw_throughput(module, datamodule, warmup, steps, clip, precision))
            if cfg.train.lightning:
                log.info("Training throughput of %s: Lightning", model.name)
                light.append(lightning_throughput(config, module, datamodule, warmup, steps))
    row: dict[str, Any] = {"model": model.name, "overrides": list(model.overrides)}
    for path, runs in (("raw", raw), ("lightning", light)):
        if runs:
            row[f"{path}_tokens_per_s"] = max(run.tokens_per_s for run in runs)
            row[f"{path}_rounds"] = [dataclasses.asdict(run) for run in runs]
    return row


def measure_naive(
    cfg: DictConfig,
    reference: DictConfig,
    module: TranslationModule | None,
    datamodule: TranslationDataModule,
    greedy: Decoded | None,
) -> dict[str, Any]:
    """Naive training from a fresh reference model; naive greedy decoding of the trained one (so its
    outputs can be checked against the batched greedy search)."""
    fresh = build_module(reference, datamodule, cfg.seed).net
    train_set = datamodule.datasets["train"]
    log.info("Naive training for %s s", cfg.naive.train_seconds)
    trained = naive.train_for(
        naive.NaiveSeq2Seq.from_seq2seq(fresh),
        list(zip(train_set.src_ids, train_set.tgt_ids, strict=True)),
        cfg.naive.train_seconds,
        clip=reference.trainer.gradient_clip_val,
        seed=cfg.seed,
    )
    sources = datamodule.datasets["valid"].src_ids[: cfg.decode.max_sentences]
    log.info("Naive decoding for %s s", cfg.naive.decode_seconds)
    decoded, outputs = naive.translate_for(
        naive.NaiveSeq2Seq.from_seq2seq(module.net if module is not None else fresh),
        sources,
        cfg.naive.decode_seconds,
        reference.model.val_generator.max_len_a,
        reference.model.val_generator.max_len_b,
        seed=cfg.seed,
    )
    same = [outputs[i] == greedy.outputs[i] for i in outputs] if greedy is not None else []
    return {
        "tokens_per_s": trained.target_tokens / trained.seconds,
        "train_sentences": trained.sentences,
        "train_s": trained.seconds,
        "sentences_per_s": decoded.sentences / decoded.seconds,
        "decode_sentences": decoded.sentences,
        "decode_s": decoded.seconds,
        "same_as_batched": sum(same) / len(same) if same else float("nan"),
    }


def add_naive_ratios(results: dict[str, Any]) -> None:
    """Every speed as a multiple of the naive baseline's."""
    naive_train, naive_decode = results["naive"]["tokens_per_s"], results["naive"]["sentences_per_s"]
    for row in results.get("training", []):
        for path in ("raw", "lightning"):
            if f"{path}_tokens_per_s" in row:
                row[f"{path}_vs_naive"] = row[f"{path}_tokens_per_s"] / naive_train
    for row in results.get("decoding", []):
        row["vs_naive"] = row["sentences_per_s"] / naive_decode


def machine() -> dict[str, Any]:
    """`src.hardware.machine`, with Lightning's version and the load when the benchmark starts."""
    return {**hardware_machine(), "lightning": lightning.__version__, "load_start": os.getloadavg()[0]}


def settings(cfg: DictConfig, reference: DictConfig) -> dict[str, Any]:
    return {
        "experiment": cfg.train_experiment,
        "overrides": list(cfg.overrides),
        "parts": list(cfg.parts),
        "precision": str(reference.trainer.precision),
        "float32_matmul_precision": reference.float32_matmul_precision,
        "batch_size": reference.data.batch_size,
        "warmup_steps": cfg.train.warmup_steps,
        "steps": cfg.train.steps,
        "rounds": cfg.train.rounds,
        "decode_batch_size": cfg.decode.batch_size,
        "max_len_a": reference.model.val_generator.max_len_a,
        "max_len_b": reference.model.val_generator.max_len_b,
        "bleu_budget_s": 60 * cfg.bleu.budget_minutes,
        "naive_train_s": cfg.naive.train_seconds,
        "naive_decode_s": cfg.naive.decode_seconds,
    }


def process_age() -> float:
    """Seconds since this process started (from /proc on Linux; elsewhere since this module was imported)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (ru_maxrss: kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 2**10


@entry_point("bench")
def main(cfg: DictConfig) -> None:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    print(bench(cfg, output_dir))
    log.info("Wrote %s and %s", output_dir / report.JSON_FILE, output_dir / report.MARKDOWN_FILE)


if __name__ == "__main__":
    main()
