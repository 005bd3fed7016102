"""What decoding is asked to do (``DecodeConfig``) and what it returns (``Hypothesis``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from s2s_core.config_io import strict_from_dict

NEG_INF = float("-inf")  # a blocked token's log-probability, an empty slot's score
STRATEGIES = ("greedy", "beam", "sample")
DIVERSITIES = ("none", "sibling", "hamming")
LENGTH_PENALTY_FORMS = ("power", "gnmt")


@dataclass(frozen=True)
class DecodeConfig:
    strategy: str = "beam"  # greedy | beam | sample
    beam_size: int = 5  # live hypotheses per source (beam)
    n_best: int = 1  # hypotheses returned per source (beam: <= beam_size; sample: samples)
    max_len: int = 40  # generated tokens at most, <eos> included; longer ones are cut
    min_len: int = 0  # <eos> is blocked until this many tokens are generated
    length_penalty: float = 1.0  # alpha: a finished score is log p / lp(len)
    length_penalty_form: str = "power"  # power: len**alpha (textbook) | gnmt: ((5+len)/6)**alpha
    diversity: str = "none"  # none | sibling (Li et al. 2016) | hamming (Vijayakumar et al.)
    diversity_strength: float = 0.5  # sibling: gamma per rank; hamming: lambda per prior pick
    num_groups: int | None = None  # hamming groups; None = beam_size (one beam per group)
    no_repeat_ngram: int = 0  # n > 0: no n-gram occurs twice in a hypothesis
    block_source_ngram: int = 0  # n > 0: no n-gram of the source is repeated (no parroting)
    max_word_uses: int = 0  # n > 0: a content word at most n times, no word twice in a row
    temperature: float = 1.0  # sample: logits divided by this
    top_k: int = 0  # sample: keep the k most likely tokens (0 = all)
    top_p: float = 1.0  # sample: keep the smallest set with this much probability mass
    seed: int | None = None  # sample: same seed, same samples

    def __post_init__(self) -> None:
        _choice("strategy", self.strategy, STRATEGIES)
        _choice("diversity", self.diversity, DIVERSITIES)
        _choice("length_penalty_form", self.length_penalty_form, LENGTH_PENALTY_FORMS)
        for name in ("beam_size", "n_best", "max_len"):
            _int_at_least(name, getattr(self, name), 1)
        for name in ("min_len", "no_repeat_ngram", "block_source_ngram", "max_word_uses", "top_k"):
            _int_at_least(name, getattr(self, name), 0)
        if self.min_len >= self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be below max_len ({self.max_len})")
        if self.strategy == "beam" and self.n_best > self.beam_size:
            raise ValueError(f"n_best ({self.n_best}) must not exceed beam_size ({self.beam_size})")
        if self.diversity_strength < 0:
            raise ValueError("diversity_strength must be >= 0")
        if self.num_groups is not None:
            _int_at_least("num_groups", self.num_groups, 1)
        if self.diversity == "hamming" and self.beam_size % self.groups != 0:
            raise ValueError(f"num_groups ({self.groups}) must divide beam_size ({self.beam_size})")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def groups(self) -> int:
        """Beam groups: hamming's, else one."""
        if self.diversity != "hamming":
            return 1
        return self.num_groups if self.num_groups is not None else self.beam_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecodeConfig:
        return strict_from_dict(cls, data)


def _choice(name: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _int_at_least(name: str, value: object, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass
class Hypothesis:
    """One decoded output. ``tokens`` exclude ``<sos>`` and end with ``<eos>`` unless cut at
    ``max_len``; ``log_prob`` is the model's summed log-probability of those tokens and
    ``score`` is ``log_prob / length_penalty(len(tokens))`` (diversity penalties excluded)."""

    tokens: list[int]
    score: float
    log_prob: float


def length_penalty(length: Any, alpha: float, form: str) -> Any:
    """lp(len): ``len ** alpha`` (power) or ``((5 + len) / 6) ** alpha`` (gnmt, Wu et al.)."""
    if form == "power":
        return length**alpha
    return ((5 + length) / 6) ** alpha
