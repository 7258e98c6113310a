"""Decoding: greedy and beam search over any model with `encode`, `start_decoding` and `decode_step`."""

from src.decoding.beam_search import beam_search
from src.decoding.generator import SequenceGenerator
from src.decoding.greedy import greedy_search
from src.decoding.hypothesis import Hypothesis

__all__ = ["Hypothesis", "SequenceGenerator", "beam_search", "greedy_search"]
