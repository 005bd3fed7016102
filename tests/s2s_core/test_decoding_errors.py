"""Bad decoding requests fail with a ValueError naming the argument."""

from __future__ import annotations

import pytest

from s2s_core import DecodeConfig, generate
from tests.utils.fake_models import TableModel


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 2, "n_best": 3}, "n_best"),
        ({"max_len": 0}, "max_len"),
        ({"min_len": 5, "max_len": 5}, "min_len"),
        ({"diversity": "hamming", "beam_size": 5, "num_groups": 2}, "num_groups"),
        ({"num_groups": 0}, "num_groups"),
        ({"strategy": "nucleus"}, "strategy"),
        ({"diversity": "mmi"}, "diversity"),
        ({"length_penalty_form": "cubic"}, "length_penalty_form"),
        ({"diversity_strength": -1.0}, "diversity_strength"),
        ({"temperature": 0.0}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"no_repeat_ngram": -2}, "no_repeat_ngram"),
        ({"beam_size": True}, "beam_size"),
    ],
)
def test_bad_config(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        DecodeConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ([], "src must be a non-empty list"),
        ([[]], r"src\[0\] must be a non-empty list"),
        ([[4], []], r"src\[1\] must be a non-empty list"),
        ([[4, 99]], r"src\[0\] holds id 99 outside"),
        ([[4, 0]], r"src\[0\] holds id 0 outside"),
        ([[4, -1]], "outside"),
        ([[4, "a"]], "non-integer"),
        (["abc"], r"src\[0\] must be a non-empty list of token ids"),
    ],
)
def test_bad_sources(src: list[list[int]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(TableModel({}), src, DecodeConfig())


def test_beam_larger_than_vocabulary() -> None:
    with pytest.raises(ValueError, match="beam_size"):
        generate(TableModel({}, vocab=8), [[4]], DecodeConfig(beam_size=9, n_best=1))


def test_from_dict_rejects_unknown_fields() -> None:
    cfg = DecodeConfig(diversity="sibling")
    assert DecodeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields: beam"):
        DecodeConfig.from_dict({"beam": 4})
