"""Int8 dynamic quantisation of a trained model, for faster translation on a CPU."""

import copy
import warnings

import torch
from torch import nn


def quantize_int8(net: nn.Module) -> nn.Module:
    """A copy of `net`, in eval mode, whose `nn.Linear` layers compute in int8 on the CPU: weights stored
    as int8, activations quantised on the fly (PyTorch's dynamic quantisation). The output layer over the
    target vocabulary is most of a decoding step's work; the recurrent cells stay float32 (the recurrent
    decoder runs them with its own cell math). Translations change slightly: see docs/BENCHMARK.md.
    """
    with warnings.catch_warnings():  # torch announces that this API moves to torchao; in 2.13 it still works
        warnings.filterwarnings(
            "ignore", message=r".*(torch.ao.quantization is deprecated|quantize_per_tensor).*"
        )
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(net).eval(), {nn.Linear}, dtype=torch.qint8
        )
