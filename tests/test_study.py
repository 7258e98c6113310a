"""`python -m src.study`: the study pipeline, CI-sized: two tiny models, two seeds each, the table, the
mean and standard deviation over seeds, the paired significance test and the figures."""

import csv
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from src.errors import ConfigError
from src.hardware import cpu_family
from src.study import baseline_row, model_name, paired_p_value, study, varying_options
from tests.conftest import TINY_MODEL, run_entry, write_reverse_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("study")
    task = write_reverse_task(directory)
    result = run_entry(
        "src.train",
        "-m",
        f"data.train_path={task['train']}",
        f"data.valid_path={task['valid']}",
        f"data.test_path={task['test']}",
        *(o for o in TINY_MODEL if not o.startswith("attention.")),  # attention=none has no size
        "attention=none,bahdanau",
        "seed=1,2",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20",
        "model.optimizer.lr=0.01",
        "~callbacks.progress_bar",
        f"paths.log_dir={directory}",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (folder,) = directory.glob("train/multiruns/*")
    return folder


def test_model_name_leaves_out_the_seed_where_it_ran_and_what_all_runs_share():
    runs = [["experiment=s", "attention=none", "seed=1"], ["experiment=s", "attention=bahdanau", "seed=2"]]
    assert varying_options(runs) == {"attention"}
    # an option only a later run sets varies as well (the runs without it are the defaults)
    assert varying_options([["seed=1"], ["seed=2"], ["model.alignment_loss_weight=0.05", "seed=3"]]) == {
        "model.alignment_loss_weight"
    }
    assert model_name(runs[0], varying_options(runs)) == "attention=none"
    assert (
        model_name(["experiment=s", "seed=1", "paths.log_dir=/x", "~callbacks.progress_bar"])
        == "experiment=s"
    )
    assert model_name(["seed=1"]) == "(defaults)"


def test_the_baseline_is_the_row_that_has_its_overrides():
    rows = ["experiment=s,attention=none", "experiment=s,attention=bahdanau", "experiment=t"]
    assert baseline_row("attention=none", rows) == "experiment=s,attention=none"  # the experiment varies too
    assert baseline_row("experiment=t", rows) == "experiment=t"
    with pytest.raises(ConfigError, match="names more than one row"):
        baseline_row("experiment=s", rows)
    with pytest.raises(ConfigError, match="is not a row; the rows are: experiment=s,attention=none"):
        baseline_row("attention=coverage", rows)


def test_rows_tested_on_other_references_get_no_p_value():
    def job(hypotheses, references):
        signature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
        return SimpleNamespace(seed=1, beam=SimpleNamespace(hypotheses=hypotheses, references=references,
                                                           bleu_signature=signature))  # fmt: skip

    references = ["a cat sat on the mat", "the dog ran home", "it rains today"]
    baseline = job(["a cat sat", "the dog ran", "it rains"], references)
    better = job(references, references)
    assert 0.0 <= paired_p_value([baseline], [better], 50) <= 1.0
    other_direction = job(["le chat", "le chien", "il pleut"], ["le chat", "le chien court", "il pleut"])
    assert paired_p_value([baseline], [other_direction], 50) is None


def test_study_table_has_one_row_per_model_with_seeds_and_a_p_value(study_sweep, tmp_path, one_thread):
    paths = study(study_sweep, "attention=none", beam_size=2, out=tmp_path, test_path=None, n_samples=100)
    assert {p.name for p in paths} >= {"study.md", "study.csv", "study_bleu.png", "study_by_length.png"}
    rows = {row["model"]: row for row in json.loads((tmp_path / "study.json").read_text())}
    assert set(rows) == {"attention=none", "attention=bahdanau"}
    for row in rows.values():
        assert row["seeds"] == [1, 2]
        assert row["bleu_std"] is not None  # two seeds: a standard deviation
        assert row["parameters"] > 0 and row["greedy_sentences_per_s"] > 0
        assert sum(b["sentences"] for b in row["by_length"]) == 100
    assert rows["attention=none"].get("p_value") is None  # the baseline is not tested against itself
    assert 0.0 <= rows["attention=bahdanau"]["p_value"] <= 1.0
    assert rows["attention=bahdanau"]["entropy"] is not None
    assert rows["attention=none"]["entropy"] is None  # no attention, no attention statistics
    markdown = (tmp_path / "study.md").read_text()
    assert "| attention=bahdanau | 1,2 |" in markdown and " ± " in markdown and "paired bootstrap" in markdown
    # where each run trained: its CPU, threads and commit, from its summary.json
    assert len(re.findall(rf"\({cpu_family()}\), torch threads \d+, commit ", markdown)) == 4
    assert "attention=none, seed 2:" in markdown
    with (tmp_path / "study.csv").open() as file:
        assert len(list(csv.DictReader(file))) == 2
    # the second report reads the decodings cached in each run
    cached = sorted(study_sweep.glob("*/study/greedy.json"))
    assert len(cached) == 4
    before = [p.stat().st_mtime_ns for p in cached]
    study(study_sweep, None, beam_size=2, out=tmp_path / "again", test_path=None, n_samples=100)
    assert [p.stat().st_mtime_ns for p in cached] == before


def test_a_run_left_out_does_not_rename_the_rows(study_sweep, tmp_path, one_thread):
    folder = tmp_path / "sweep"
    shutil.copytree(study_sweep, folder)  # with each run's cached decodings
    run = next(path.parent.parent for path in folder.glob("*/.hydra/overrides.yaml"))
    shutil.copytree(run, folder / "unfinished")
    overrides = folder / "unfinished" / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- model.optimizer.lr=0.5\n")
    (folder / "unfinished" / "checkpoints" / "best.ckpt").unlink()  # still training: left out
    study(folder, "attention=none", beam_size=2, out=tmp_path, test_path=None, n_samples=10)
    rows = {row["model"] for row in json.loads((tmp_path / "study.json").read_text())}
    assert rows == {"attention=none", "attention=bahdanau"}


def test_an_unknown_baseline_names_the_rows(study_sweep, tmp_path, one_thread):
    with pytest.raises(ConfigError, match="is not a row; the rows are: .*attention=none"):
        study(study_sweep, "attention=luong_dot", beam_size=2, out=tmp_path, test_path=None, n_samples=10)


def test_the_attribution_columns_compare_attention_with_integrated_gradients(
    study_sweep, tmp_path, one_thread
):
    study(study_sweep, None, beam_size=2, out=tmp_path, test_path=None, n_samples=10, attribution=3)
    rows = {row["model"]: row for row in json.loads((tmp_path / "study.json").read_text())}
    with_attention = [row for name, row in rows.items() if name != "attention=none"]
    assert all(-1 <= row["ig_spearman"] <= 1 and 0 <= row["ig_top_agreement"] <= 1 for row in with_attention)
    assert rows["attention=none"]["ig_spearman"] is None  # nothing to compare
    assert "attn~IG ρ" in (tmp_path / "study.md").read_text()
    assert sorted(study_sweep.glob("*/study/attribution/attribution.json"))


def test_an_archived_study_gives_the_same_table_without_its_checkpoints(study_sweep, tmp_path, one_thread):
    archive = tmp_path / "archive"
    study(study_sweep, "attention=none", beam_size=2, out=tmp_path / "live", test_path=None, n_samples=100,
          attribution=3, archive=archive)  # fmt: skip
    files = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith(".ckpt") or "tfevents" in f]  # no checkpoint, no event file
    assert len([f for f in files if f.endswith("study/beam2.json.gz")]) == 4
    live = json.loads((tmp_path / "live" / "study.json").read_text())
    # the archive alone: the same rows, seeds, BLEU, p-values and attribution columns
    study(archive, "attention=none", beam_size=2, out=tmp_path / "archived", test_path=None, n_samples=100,
          attribution=3)  # fmt: skip
    assert json.loads((tmp_path / "archived" / "study.json").read_text()) == live
    # live runs and their archive together: each run once, not as two seeds
    study([study_sweep, archive], "attention=none", beam_size=2, out=tmp_path / "both", test_path=None,
          n_samples=100)  # fmt: skip
    rows = json.loads((tmp_path / "both" / "study.json").read_text())
    assert [row["seeds"] for row in rows] == [[1, 2], [1, 2]]
    assert [row["bleu"] for row in rows] == [row["bleu"] for row in live]
    # an archive not written yet, given beside the live runs, is no error
    study([study_sweep, tmp_path / "not_written"], None, beam_size=2, out=tmp_path / "first", test_path=None,
          n_samples=10)  # fmt: skip
    # archiving again replaces the archive; only what the table used is kept (here no attribution)
    study(
        study_sweep, None, beam_size=2, out=tmp_path / "live", test_path=None, n_samples=10, archive=archive
    )
    assert not list(archive.glob("*/study/attribution")) and not list(archive.glob(".*partial"))
    # what an archived run cannot do (decode again) is said, with the fix
    with pytest.raises(ConfigError, match="without a beam4 decoding; it has beam2, greedy: give --beam 2"):
        study(archive, None, beam_size=4, out=tmp_path / "beam4", test_path=None, n_samples=10)
    with pytest.raises(
        ConfigError, match="tested on its own test split, not on other.tsv.*leave --test-path out"
    ):
        study(archive, None, beam_size=2, out=tmp_path / "other", test_path="other.tsv", n_samples=10)
