"""The pointer head: a mixture that stays a distribution, copies only from the retrieved reply,
starts as the model it grew from, and learns to copy what a plain decoder cannot."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from s2s_core import ModelConfig, Seq2Seq
from s2s_core.decoding import DecodeConfig, generate
from s2s_core.model import with_pointer
from s2s_core.train import masked_nll

VOCAB = 40
MARKER = VOCAB  # the refine marker: the encoder's row beyond the decoder's vocabulary


def small(pointer: bool = True, **kw: object) -> Seq2Seq:
    options = {"emb_dim": 12, "hidden_dim": 16, "n_layers": 1, "dropout": 0.0, **kw}
    torch.manual_seed(0)
    config = ModelConfig(VOCAB + 1, VOCAB, attention="luong", pointer=pointer, **options)  # type: ignore[arg-type]
    return Seq2Seq(config).eval()


def set_gate(model: Seq2Seq, bias: float) -> None:
    assert model.decoder.pointer is not None
    with torch.no_grad():
        model.decoder.pointer.gate.weight.zero_()
        model.decoder.pointer.gate.bias.fill_(bias)


def test_a_pointer_needs_attention() -> None:
    with pytest.raises(ValueError, match="needs attention"):
        ModelConfig(VOCAB + 1, VOCAB, pointer=True)


def test_the_mixture_is_a_distribution_over_the_vocabulary() -> None:
    model = small()
    src = torch.tensor([[5, 6, MARKER, 7, 8], [9, 10, 11, MARKER, 0]])
    tgt = torch.tensor([[1, 7, 8, 2], [1, 4, 2, 0]])
    with torch.no_grad():
        log_probs = model(src, tgt)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 3))


def test_it_copies_only_the_tokens_after_the_marker() -> None:
    """With the gate shut, every bit of probability is a copy: of the retrieved reply's
    tokens, never of the conversation's (repeating the user is a defect)."""
    model = small()
    set_gate(model, -30.0)  # write nothing: copy
    src = torch.tensor([[5, 6, 7, MARKER, 20, 21, 21]])
    tgt = torch.tensor([[1, 20, 21, 2]])
    with torch.no_grad():
        probs = model(src, tgt).exp()[0]  # [steps, vocab]
    support = {int(i) for i in (probs.sum(0) > 1e-6).nonzero().squeeze(1)}
    assert support == {20, 21}
    state = model.encode(src)
    assert state.memory is not None and state.memory.copyable is not None
    assert state.memory.copyable.tolist() == [[False] * 4 + [True] * 3]


def test_with_nothing_to_copy_it_is_the_plain_decoder() -> None:
    """An empty slot (retrieval found nothing): the vocabulary's distribution, whatever the
    gate says, and no NaN from a softmax over nothing."""
    model = small()
    set_gate(model, -30.0)
    plain = small(pointer=False)
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if "pointer" not in k}, strict=True
    )
    src = torch.tensor([[5, 6, 7, MARKER]])
    tgt = torch.tensor([[1, 9, 10, 2]])
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt), plain(src, tgt).log_softmax(-1))


def test_a_grown_pointer_starts_close_to_the_model_it_grew_from() -> None:
    plain = small(pointer=False)
    grown = with_pointer(plain)
    assert grown.config.pointer and not plain.config.pointer
    for name, tensor in plain.state_dict().items():
        torch.testing.assert_close(grown.state_dict()[name], tensor)
    set_gate(grown, 30.0)  # write everything: exactly the old model
    src = torch.tensor([[5, 6, MARKER, 7, 8]])
    tgt = torch.tensor([[1, 7, 8, 2]])
    with torch.no_grad():
        torch.testing.assert_close(grown(src, tgt), plain(src, tgt).log_softmax(-1))


def test_a_model_without_attention_cannot_grow_a_pointer() -> None:
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="attention"):
        with_pointer(Seq2Seq(ModelConfig(VOCAB + 1, VOCAB, emb_dim=8, hidden_dim=8)))


def test_teacher_forced_scores_match_the_full_distribution() -> None:
    """MMI and the hybrid pool score replies with ``target_log_probs``: the same numbers as
    the full forward pass gathered at the gold tokens."""
    model = small()
    src = torch.tensor([[5, 6, MARKER, 20, 21], [7, MARKER, 22, 0, 0]])
    tgt = torch.tensor([[1, 20, 21, 2], [1, 22, 2, 0]])
    with torch.no_grad():
        scored, mask = model.target_log_probs(src, tgt)
        full = model(src, tgt).gather(2, tgt[:, 1:].unsqueeze(2)).squeeze(2)
    torch.testing.assert_close(scored, full[mask])


@pytest.mark.parametrize(
    "cfg",
    [
        DecodeConfig(strategy="greedy"),
        DecodeConfig(strategy="beam", beam_size=4, n_best=4, diversity="hamming", num_groups=2),
        DecodeConfig(strategy="sample", n_best=3, seed=1),
    ],
)
def test_every_strategy_decodes_a_pointer_model(cfg: DecodeConfig) -> None:
    model = small()
    sources = [[5, 6, MARKER, 20, 21], [7, 8, 9, MARKER], [10, MARKER, 30]]
    out = generate(model, sources, replace(cfg, max_len=6))
    assert len(out) == 3 and all(hyps for hyps in out)
    assert all(0 <= t < VOCAB for hyps in out for h in hyps for t in h.tokens)


def _copy_batch(generator: torch.Generator, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A conversation of 4 random tokens, the marker, 4 random 'retrieved' tokens; the
    target is the retrieved tokens: learnable only by reading the slot."""
    context = torch.randint(4, VOCAB, (batch, 4), generator=generator)
    slot = torch.randint(4, VOCAB, (batch, 4), generator=generator)
    src = torch.cat([context, torch.full((batch, 1), MARKER), slot], dim=1)
    tgt = torch.cat([torch.ones(batch, 1, dtype=torch.long), slot, torch.full((batch, 1), 2)], 1)
    return src, tgt


def _loss_after_training(model: Seq2Seq, steps: int) -> float:
    generator = torch.Generator().manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        src, tgt = _copy_batch(generator)
        loss = masked_nll(model(src, tgt), tgt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    src, tgt = _copy_batch(torch.Generator().manual_seed(99), 256)
    with torch.no_grad():
        return float(masked_nll(model(src, tgt), tgt))


def test_it_learns_to_copy_the_retrieved_reply_where_the_plain_decoder_cannot_yet() -> None:
    """The same training budget on copying unseen token strings: the pointer model copies
    (its loss far under chance, log 40 = 3.7), the plain attention decoder has barely begun."""
    pointer = _loss_after_training(small(), steps=120)
    plain = _loss_after_training(small(pointer=False), steps=120)
    assert pointer < 1.0
    assert pointer < plain / 2
