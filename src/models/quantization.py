"""Int8 dynamic quantisation of a trained model, for faster translation on a CPU."""

import copy
import warnings

import torch
from torch import nn


def quantize_int8(net: nn.Module, keep_float: tuple[str, ...] = ()) -> nn.Module:
    """A copy of `net`, in eval mode, whose `nn.Linear` layers compute in int8 on the CPU: weights stored
    as int8, activations quantised on the fly (PyTorch's dynamic quantisation). The output layer over the
    target vocabulary is most of a decoding step's work; the recurrent cells stay float32 (the recurrent
    decoder runs them with its own cell math). Translations change slightly: see docs/BENCHMARK.md.

    `keep_float`: names of linear layers (as `named_modules` gives them) left in float32, e.g.
    `("output_layer",)` for a vocabulary shortlist, which gathers the rows of a float output layer per batch.
    """
    net = copy.deepcopy(net).eval()
    unknown = set(keep_float) - {name for name, _ in net.named_modules()}
    if unknown:
        raise ValueError(f"keep_float names no layer of the model: {sorted(unknown)}")
    linears = {
        name: torch.ao.quantization.default_dynamic_qconfig
        for name, module in net.named_modules()
        if isinstance(module, nn.Linear) and name not in keep_float
    }
    with warnings.catch_warnings():  # torch announces that this API moves to torchao; in 2.13 it still works
        warnings.filterwarnings(
            "ignore", message=r".*(torch.ao.quantization is deprecated|quantize_per_tensor).*"
        )
        return torch.ao.quantization.quantize_dynamic(net, linears, dtype=torch.qint8)
