"""Checkpoints: written atomically, read weights-only, usable alone.

A checkpoint is Lightning's dictionary plus a `seq2seq_lab` entry holding the resolved run config and
the codec (tokenizers + vocabularies) as plain data. Nothing is ever unpickled: files are read with
`torch.load(weights_only=True)`, and the only code a checkpoint can name is a `_target_` inside this
package or torch.
"""

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from torch import nn

from src.config import set_matmul_precision
from src.data.codec import Codec
from src.data.tsv import read_parallel_tsv
from src.decoding.shortlist import FLOAT_LAYERS, Shortlist
from src.errors import CheckpointError, ConfigError
from src.models.quantization import quantize_int8
from src.translator import Translator

# modules a checkpoint's config may instantiate: ours and torch's, nothing else
ALLOWED_TARGET_PREFIXES = ("src.", "torch.")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<name>.tmp-<pid>` beside the target, fsyncs it, then renames it over the target.

    A crash or an error half-way through leaves the previous checkpoint intact.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return read_checkpoint(path, map_location=map_location)


# the layout of the "seq2seq_lab" entry of a checkpoint (config, codec, bookkeeping); raise it when it changes
CHECKPOINT_FORMAT = 1


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint weights-only, turning every way it can be wrong into a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"Checkpoint {path} does not exist. Check ckpt_path (runs keep theirs in <run>/checkpoints/)."
        )
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {path} is a directory, not a file. Point ckpt_path at a .ckpt file inside it."
        )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a cut-off one has no directory
        raise CheckpointError(
            f"Checkpoint {path} is truncated, corrupt or not a checkpoint at all. "
            "Use another checkpoint of the run (best.ckpt or last.ckpt)."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"Checkpoint {path} holds objects other than tensors and plain data, so it was not loaded "
            "(loading is weights-only, for safety): it was not written by seq2seq-lab."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointError(
            f"Checkpoint {path} is truncated or corrupt and cannot be read ({err}). "
            "Use another checkpoint of the run (best.ckpt or last.ckpt)."
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "seq2seq_lab" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a seq2seq-lab checkpoint (it lacks the model weights or the saved config and "
            "vocabularies). Use a .ckpt written by `python -m src.train`."
        )
    written = checkpoint["seq2seq_lab"].get("format") if isinstance(checkpoint["seq2seq_lab"], dict) else None
    if written != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"Checkpoint {path} is in checkpoint format {written!r}, but this version of seq2seq-lab reads format "
            f"{CHECKPOINT_FORMAT}. Use the version of seq2seq-lab that wrote it, or train the model again."
        )
    return checkpoint


@dataclass
class LoadedModel:
    net: nn.Module
    codec: Codec
    config: dict[str, Any]


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the trained network and its codec from a checkpoint file alone."""
    checkpoint = read_checkpoint(path)
    meta = checkpoint["seq2seq_lab"]
    config = meta["config"]
    net_config = config.get("model", {}).get("net")
    if net_config is None:
        raise CheckpointError(f"Checkpoint {path} has no model.net config; it cannot be rebuilt.")
    _check_targets(net_config, path)
    codec = Codec.from_state_dict(meta["codec"])
    net = instantiate(OmegaConf.create(net_config))(
        src_vocab_size=len(codec.src_vocab), tgt_vocab_size=len(codec.tgt_vocab)
    )
    weights = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"The weights in {path} do not fit the model its config describes ({err}). "
            "The checkpoint was written by an incompatible version of the code."
        ) from err
    return LoadedModel(net=net.to(device).eval(), codec=codec, config=config)


def load_translator(cfg: DictConfig) -> tuple[Translator, dict[str, Any]]:
    """The Translator a command asks for, and the config the model was trained with.

    Reads `ckpt_path`, `decode` (a `SequenceGenerator` node) and the `inference` group's options
    (conf/inference/search.yaml, checked by `check_inference_options`): `device` (auto, cpu, cuda, cuda:N),
    `batch_size`, `max_src_len`, `int8` (int8 linear layers on the CPU: `src.models.quantization`),
    `shortlist` (a vocabulary shortlist file: `src.decoding.shortlist`) and
    `float32_matmul_precision` (see `src.config.set_matmul_precision`).
    """
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError(
            "ckpt_path is missing: name the checkpoint to use, e.g. "
            "ckpt_path=outputs/train/runs/<date>_<time>/checkpoints/best.ckpt"
        )
    check_inference_options(cfg)
    generator = instantiate(cfg.decode)
    device = resolve_device(cfg.device)
    if cfg.get("int8") and device.type != "cpu":
        raise ConfigError(f"int8=true quantises for the CPU only; use device=cpu (got device={cfg.device}).")
    loaded = load_model(cfg.ckpt_path, device)
    keep_float = FLOAT_LAYERS if cfg.get("shortlist") else ()  # the rows a shortlist gathers stay float
    net = quantize_int8(loaded.net, keep_float) if cfg.get("int8") else loaded.net
    shortlist = None
    if cfg.get("shortlist"):
        shortlist = Shortlist.load(cfg.shortlist)
        shortlist.check_fits(len(loaded.codec.src_vocab), len(loaded.codec.tgt_vocab), cfg.shortlist)
    translator = Translator(net, loaded.codec, generator, cfg.batch_size, cfg.max_src_len, shortlist)
    return translator, loaded.config


def trained_reverse(train_config: dict[str, Any]) -> bool:
    """Whether the model was trained with `data.reverse=true` (its files' second column as the source),
    from its checkpoint's config."""
    return bool(train_config.get("data", {}).get("reverse", False))


def read_test_pairs(
    test_path: str | None, train_config: dict[str, Any], option: str = "data.test_path"
) -> tuple[str, list[tuple[str, str]]]:
    """The (source, reference) pairs a model is scored on: `test_path`, or else the test file of the run that
    trained it (from its checkpoint's config), read the way round the model translates (`data.reverse`).
    Returns the path read and its pairs; `option` names the setting in messages."""
    data = train_config.get("data", {})
    path = test_path or data.get("test_path")
    if not path:
        raise ConfigError(
            f"{option} is missing and the checkpoint's training run had no test file: "
            f"name a source<TAB>reference file, e.g. {option}=data/sample/test.tsv"
        )
    return path, read_parallel_tsv(path, option=option, reverse=trained_reverse(train_config)).pairs


def check_inference_options(cfg: DictConfig) -> None:
    """Check the options of the `inference` group (conf/inference/) and apply the matmul precision: the one
    place every command that runs a trained model checks them."""
    Translator.check_options(cfg.batch_size, cfg.get("max_src_len"))
    resolve_device(cfg.device)
    set_matmul_precision(cfg)


def resolve_device(device: str) -> torch.device:
    """`auto`: the GPU when PyTorch sees one, else the CPU; `cpu`; `cuda` or `cuda:N`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if isinstance(device, str) and device.split(":")[0] == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device}, but PyTorch sees no CUDA GPU here. Use device=cpu or device=auto."
            )
        try:
            return torch.device(device)
        except RuntimeError:
            pass
    raise ConfigError(f"device={device} is not a device: use auto, cpu, cuda or cuda:N.")


def _check_targets(node: Any, path: Any) -> None:
    """Refuse configs that would make instantiate() import code outside this package and torch."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(ALLOWED_TARGET_PREFIXES):
            raise CheckpointError(
                f"Checkpoint {path} names _target_={target!r}, which is not part of seq2seq-lab."
            )
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list):
        for value in node:
            _check_targets(value, path)
