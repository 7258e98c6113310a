"""Parameter initialisation schemes, chosen by the config option `model.net.init`."""

from typing import Literal

import torch
from torch import nn

from src.errors import ConfigError

InitScheme = Literal["uniform", "xavier", "default"]


def initialize(model: nn.Module, scheme: InitScheme, init_range: float = 0.1) -> None:
    """Re-initialise `model`'s parameters in place.

    * "uniform": every parameter ~ U(-init_range, init_range). The default: with Adam it makes RNN
      models learn faster than PyTorch's defaults (as in OpenNMT-py and JoeyNMT).
    * "xavier": matrices xavier_uniform (Glorot & Bengio 2010), biases 0, embeddings N(0, 0.1).
    * "default": PyTorch's own initialisation, untouched.

    Layer-norm gains and biases are left at 1 and 0 by every scheme: a random gain would scale whole
    layers at random. Embedding rows at `padding_idx` are set to zero.
    """
    if scheme not in ("uniform", "xavier", "default"):
        raise ConfigError(f"model.net.init={scheme!r} is unknown; use uniform, xavier or default.")
    if scheme == "default":
        return
    modules = list(model.modules())
    norms = {id(p) for m in modules if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    embeddings = [m for m in modules if isinstance(m, nn.Embedding)]
    embedding_weights = {id(m.weight) for m in embeddings}
    with torch.no_grad():
        for param in model.parameters():
            if id(param) in norms:
                continue
            if scheme == "uniform":
                nn.init.uniform_(param, -init_range, init_range)
            elif id(param) in embedding_weights:
                nn.init.normal_(param, mean=0.0, std=0.1)
            elif param.dim() > 1:
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)
        for embedding in embeddings:
            if embedding.padding_idx is not None:
                embedding.weight[embedding.padding_idx].zero_()
