"""The textbook chapter's sketch, made to run: the baselines our benchmarks beat.

Training: one decoder call per target position, random (unbucketed) batches, no packing.
Decoding: greedy one sentence at a time; beam search one hypothesis at a time.
"""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import Tensor, nn

from s2s_core.model import Seq2Seq
from s2s_core.special import EOS_ID, PAD_ID, SOS_ID


class TextbookEncoder(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: Tensor) -> tuple[Tensor, Tensor]:
        _, (hidden, cell) = self.rnn(self.dropout(self.embedding(src)))  # src: [len, batch]
        return hidden, cell


class TextbookDecoder(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.output_dim = vocab
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, dropout=dropout)
        self.fc_out = nn.Linear(hidden, vocab)
        self.dropout = nn.Dropout(dropout)

    def forward(self, token: Tensor, hidden: Tensor, cell: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        embedded = self.dropout(self.embedding(token.unsqueeze(0)))  # [1, batch, emb]
        output, (hidden, cell) = self.rnn(embedded, (hidden, cell))
        return self.fc_out(output.squeeze(0)), hidden, cell


class TextbookSeq2Seq(nn.Module):
    def __init__(
        self, src_vocab: int, tgt_vocab: int, emb: int, hidden: int, layers: int, dropout: float
    ) -> None:
        super().__init__()
        self.encoder = TextbookEncoder(src_vocab, emb, hidden, layers, dropout)
        self.decoder = TextbookDecoder(tgt_vocab, emb, hidden, layers, dropout)

    def forward(self, src: Tensor, trg: Tensor, teacher_forcing_ratio: float = 1.0) -> Tensor:
        """``src`` [src_len, batch], ``trg`` [trg_len, batch] → outputs [trg_len, batch, V]."""
        trg_len, batch = trg.shape
        outputs = torch.zeros(trg_len, batch, self.decoder.output_dim)
        hidden, cell = self.encoder(src)
        token = trg[0]
        for t in range(1, trg_len):
            output, hidden, cell = self.decoder(token, hidden, cell)
            outputs[t] = output
            teacher_force = random.random() < teacher_forcing_ratio
            token = trg[t] if teacher_force else output.argmax(1)
        return outputs


def textbook_train_step(
    model: TextbookSeq2Seq, optimizer: torch.optim.Optimizer, src: Tensor, tgt: Tensor
) -> float:
    """The chapter's ``train`` loop body on batch-first tensors."""
    src, trg = src.t(), tgt.t()
    optimizer.zero_grad()
    output = model(src, trg)
    loss = nn.functional.cross_entropy(
        output[1:].reshape(-1, output.size(-1)), trg[1:].reshape(-1), ignore_index=PAD_ID
    )
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


@torch.inference_mode()
def textbook_greedy(model: Seq2Seq, src: list[int], max_len: int, min_len: int) -> list[int]:
    """One sentence, one step at a time."""
    state = model.encode(torch.tensor([src]))
    token, out = torch.tensor([SOS_ID]), []
    for step in range(max_len):
        lprobs, state = model.decode_step(token, state)
        if step < min_len:
            lprobs[0, EOS_ID] = float("-inf")
        token = lprobs.argmax(dim=-1)
        out.append(int(token))
        if out[-1] == EOS_ID:
            break
    return out


@torch.inference_mode()
def textbook_beam(model: Seq2Seq, src: list[int], k: int, max_len: int, min_len: int) -> list[int]:
    """One hypothesis at a time: expand each, keep the k best, stop at max_len or when the
    best is finished."""
    state = model.encode(torch.tensor([src]))
    beams: list[tuple[float, list[int], Any]] = [(0.0, [], state)]
    for step in range(max_len):
        candidates = []
        for score, tokens, st in beams:
            if tokens and tokens[-1] == EOS_ID:
                candidates.append((score, tokens, st))
                continue
            prev = torch.tensor([tokens[-1] if tokens else SOS_ID])
            lprobs, new_state = model.decode_step(prev, st)
            if step < min_len:
                lprobs[0, EOS_ID] = float("-inf")
            top, idx = lprobs[0].topk(k)
            for lp, tok in zip(top.tolist(), idx.tolist(), strict=True):
                candidates.append((score + lp, [*tokens, tok], new_state))
        beams = sorted(candidates, key=lambda c: -c[0])[:k]
        if beams[0][1][-1] == EOS_ID:
            break
    return beams[0][1]
