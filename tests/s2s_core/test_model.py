"""The model's contract: shapes, padding invariance, fast path, configuration errors."""

from __future__ import annotations

import pytest
import torch

from s2s_core import ModelConfig, Seq2Seq
from s2s_core.train import masked_nll

VARIANTS = [
    {},
    {"cell": "gru"},
    {"attention": "luong"},
    {"bidirectional": True},
    {"bidirectional": True, "cell": "gru", "attention": "luong", "tie_embeddings": True},
    {"tie_embeddings": True, "n_layers": 1},
    {"attention": "luong", "pointer": True},
    {"attention": "luong", "pointer": True, "tie_embeddings": True, "bidirectional": True},
]


def small(**kw: object) -> Seq2Seq:
    options = {"emb_dim": 12, "hidden_dim": 16, "n_layers": 2, "dropout": 0.0, **kw}
    torch.manual_seed(0)
    return Seq2Seq(ModelConfig(30, 40, **options)).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_shape(variant: dict[str, object]) -> None:
    model = small(**variant)
    src = torch.randint(4, 30, (3, 7))
    tgt = torch.randint(4, 40, (3, 5))
    assert model(src, tgt).shape == (3, 4, 40)
    assert model(src, tgt, teacher_forcing_ratio=0.0).shape == (3, 4, 40)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_leak(variant: dict[str, object]) -> None:
    model = small(**variant)
    src = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0], [9, 9, 0, 0, 0, 0, 0]])
    tgt = torch.tensor([[1, 4, 5, 6]])
    tgt_padded = torch.tensor([[1, 4, 5, 6, 0, 0], [1, 7, 0, 0, 0, 0]])
    with torch.no_grad():
        alone, batched = model.encode(src), model.encode(padded)
        for a, b in zip(alone.rnn, batched.rnn, strict=True):
            torch.testing.assert_close(a[:, 0], b[:, 0])
        torch.testing.assert_close(model(src, tgt)[0], model(padded, tgt_padded)[0, :3])


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_path_equals_step_by_step(variant: dict[str, object]) -> None:
    model = small(**variant)
    src = torch.randint(4, 30, (2, 6))
    tgt = torch.randint(4, 40, (2, 5))
    with torch.no_grad():
        fused = model(src, tgt, teacher_forcing_ratio=1.0)
        stepwise = model._free_running(tgt[:, :-1], model.encode(src), ratio=1.0)
    torch.testing.assert_close(fused, stepwise, rtol=1e-5, atol=1e-5)


def test_decode_step_matches_forward() -> None:
    model = small(attention="luong", bidirectional=True)
    src = torch.randint(4, 30, (2, 6))
    tgt = torch.randint(4, 40, (2, 5))
    with torch.no_grad():
        expected = model(src, tgt).log_softmax(-1)
        state = model.encode(src)
        for t in range(4):
            lprobs, state = model.decode_step(tgt[:, t], state)
            torch.testing.assert_close(lprobs, expected[:, t], rtol=1e-5, atol=1e-5)


def test_zero_teacher_forcing_feeds_predictions() -> None:
    """With ratio 0 the target tokens after <sos> are never read."""
    model = small(attention="luong")
    src = torch.randint(4, 30, (2, 6))
    tgt_a = torch.tensor([[1, 4, 5, 6, 7]] * 2)
    tgt_b = torch.tensor([[1, 9, 9, 9, 9]] * 2)
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt_a, 0.0), model(src, tgt_b, 0.0))
        assert not torch.allclose(model(src, tgt_a, 1.0), model(src, tgt_b, 1.0))


def test_loss_ignores_padding() -> None:
    model = small()
    src = torch.tensor([[5, 6, 7]])
    tgt = torch.tensor([[1, 4, 5, 2]])
    tgt_padded = torch.tensor([[1, 4, 5, 2, 0, 0]])
    with torch.no_grad():
        a = masked_nll(model(src, tgt), tgt)
        b = masked_nll(model(src, tgt_padded), tgt_padded)
    torch.testing.assert_close(a, b)


def test_tied_embeddings_share_storage() -> None:
    model = small(tie_embeddings=True)
    assert model.decoder.out.weight is model.decoder.embedding.weight
    assert small().num_parameters() > model.num_parameters()


def test_empty_source_row_is_an_error() -> None:
    model = small()
    with pytest.raises(ValueError, match="non-padding"):
        model.encode(torch.tensor([[5, 6], [0, 0]]))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cell", "rnn"),
        ("attention", "bahdanau"),
        ("dropout", 1.0),
        ("hidden_dim", 0),
        ("n_layers", -1),
        ("src_vocab_size", 3),
        ("emb_dim", 2.5),
    ],
)
def test_bad_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{"src_vocab_size": 30, "tgt_vocab_size": 30, field: value})  # type: ignore[arg-type]


def test_config_round_trip_rejects_unknown_fields() -> None:
    cfg = ModelConfig(30, 40, attention="luong")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields: heads"):
        ModelConfig.from_dict({**cfg.to_dict(), "heads": 4})


@pytest.mark.parametrize("style", [{"beam_size": 4}, {"beam_size": 6, "diversity": "hamming"}])
def test_beam_search_leaves_the_memory_in_place_and_decodes_as_if_it_moved(
    style: dict[str, object],
) -> None:
    """Beams only ever pick parents of their own source, so the attention memory is not
    copied each step; the hypotheses are exactly those of copying it."""
    from s2s_core import DecodeConfig, generate
    from s2s_core.benchmarks.decode import _CopiesMemory

    model = small(attention="luong", bidirectional=True)
    torch.manual_seed(1)
    sources = [torch.randint(4, 30, (n,)).tolist() for n in (3, 9, 5)]
    cfg = DecodeConfig(max_len=8, n_best=3, **style)  # type: ignore[arg-type]
    kept = generate(model, sources, cfg)
    assert kept == generate(_CopiesMemory(model), sources, cfg)
    state = model.encode(torch.tensor([sources[1][:3], sources[2][:3]]))
    moved = Seq2Seq.reorder_state(state, torch.tensor([1, 0]), within_sources=True)
    assert moved.memory is state.memory
