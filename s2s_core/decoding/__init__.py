"""Batched decoding: greedy, beam (plain, sibling- and Hamming-diverse) and sampling."""

from s2s_core.decoding.config import DecodeConfig, Hypothesis, length_penalty
from s2s_core.decoding.generate import Decodable, generate
from s2s_core.decoding.words import WordTable, word_table

__all__ = [
    "Decodable",
    "DecodeConfig",
    "Hypothesis",
    "WordTable",
    "generate",
    "length_penalty",
    "word_table",
]
