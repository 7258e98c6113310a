"""The BLEU the training loop logs is sacrebleu's corpus BLEU of the same outputs, not a per-batch average."""

import lightning as L
import pytest
import sacrebleu
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from src.checkpoint import read_checkpoint
from src.lit_module import TranslationModule

pytestmark = pytest.mark.usefixtures("one_thread")


def validate_tiny_model(tiny_checkpoint, bleu_tokenize: str) -> tuple[float, TranslationModule]:
    """Validate the trained tiny model over several batches; (logged val/bleu, the module)."""
    torch.manual_seed(0)
    checkpoint = read_checkpoint(tiny_checkpoint["ckpt"])
    config = OmegaConf.create(checkpoint["seq2seq_lab"]["config"])
    config.data.eval_batch_size = 16  # 7 batches: averaging per batch would give another number
    datamodule = instantiate(config.data)
    datamodule.setup("validate")
    module = instantiate(config.model, codec=datamodule.codec, bleu_tokenize=bleu_tokenize)
    module.load_state_dict(checkpoint["state_dict"])
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(module, datamodule=datamodule, verbose=False)
    return trainer.callback_metrics["val/bleu"].item(), module


def test_logged_bleu_equals_sacrebleu_corpus_bleu(tiny_checkpoint):
    logged, module = validate_tiny_model(tiny_checkpoint, "13a")
    outputs = module.validation_outputs
    assert len(outputs.hypotheses) == len(outputs.references) == 100
    expected = sacrebleu.corpus_bleu(outputs.hypotheses, [outputs.references]).score
    assert expected > 5  # a model that learned something: not a trivial 0 == 0
    assert logged == pytest.approx(expected, abs=1e-4)  # logged as float32


def test_logged_bleu_on_tokens_equals_sacrebleu_with_tokenize_none(tiny_checkpoint):
    logged, module = validate_tiny_model(tiny_checkpoint, "none")
    outputs = module.validation_outputs
    references = [" ".join(module.codec.tgt_tokenizer.tokenize(r)) for r in outputs.references]
    expected = sacrebleu.corpus_bleu(outputs.hypotheses, [references], tokenize="none").score
    assert expected > 5
    assert logged == pytest.approx(expected, abs=1e-4)
