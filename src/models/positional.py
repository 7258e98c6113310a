"""Position information for the models that have no recurrence: ConvS2S and the Transformer.

Both kinds add a vector per position to the input `[batch, seq_len, size]`; `build_positions` picks one
from the config option `positions`.
"""

import math
from typing import Literal

import torch
from torch import Tensor, nn

from src.errors import ConfigError


class Positions(nn.Module):
    """Adds a position vector to every position; refuses sequences longer than `max_positions`.

    `owner` ("encoder" or "decoder") names the config group in the error message.
    """

    def __init__(self, size: int, max_positions: int, owner: str) -> None:
        super().__init__()
        self.size = size
        self.max_positions = max_positions
        self.owner = owner

    def positions(self, length: int) -> Tensor:
        """The position vectors of positions 0 .. length - 1: `[length, size]`."""
        raise NotImplementedError

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x `[batch, seq_len, size]` at positions offset .. offset + seq_len - 1 -> x + their position
        vectors `[batch, seq_len, size]` (an offset: the positions that follow a decoder's cached prefix)."""
        length = offset + x.size(1)
        if length > self.max_positions:
            raise ConfigError(
                f"{self.owner}.max_positions={self.max_positions} is too small for a sequence of "
                f"{length} tokens; raise {self.owner}.max_positions or drop longer sentences from the data."
            )
        return x + self.positions(length)[offset:].to(x.dtype)


class SinusoidalPositions(Positions):
    """Fixed sinusoids (Vaswani et al. 2017, "Attention Is All You Need", section 3.5):

    PE(pos, 2i) = sin(pos / 10000^(2i / size)),   PE(pos, 2i + 1) = cos(pos / 10000^(2i / size))
    """

    def __init__(self, size: int, max_positions: int, owner: str) -> None:
        super().__init__(size, max_positions, owner)
        position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)  # [max_positions, 1]
        frequency = torch.exp(torch.arange(0, size, 2, dtype=torch.float32) * (-math.log(10000.0) / size))
        table = torch.zeros(max_positions, size)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)[:, : size // 2]
        # not persistent: a function of the config, so checkpoints need not carry it
        self.register_buffer("table", table, persistent=False)

    def positions(self, length: int) -> Tensor:
        return self.table[:length]


class LearnedPositions(Positions):
    """One trained vector per position (Gehring et al. 2017, "Convolutional Sequence to Sequence
    Learning", section 3.1)."""

    def __init__(self, size: int, max_positions: int, owner: str) -> None:
        super().__init__(size, max_positions, owner)
        self.embedding = nn.Embedding(max_positions, size)

    def positions(self, length: int) -> Tensor:
        return self.embedding.weight[:length]


def build_positions(
    kind: Literal["sinusoidal", "learned"], size: int, max_positions: int, owner: str
) -> Positions:
    """The position module named by the config option `<owner>.positions`."""
    if kind == "sinusoidal":
        return SinusoidalPositions(size, max_positions, owner)
    if kind == "learned":
        return LearnedPositions(size, max_positions, owner)
    raise ConfigError(f"{owner}.positions={kind!r} is unknown; use sinusoidal or learned.")
