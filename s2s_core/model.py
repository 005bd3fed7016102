"""The encoder-decoder: the textbook LSTM/GRU Seq2Seq, plus attention, bidirectionality and
tied embeddings as configuration switches.

The decoding interface (``encode`` → ``decode_step`` / ``reorder_state``) is what
``s2s_core.decoding`` drives; ``forward`` is the training path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2s_core.config_io import strict_from_dict
from s2s_core.special import PAD_ID, UNK_ID

CELLS = ("lstm", "gru")
ATTENTIONS = (None, "luong")


@dataclass
class ModelConfig:
    src_vocab_size: int  # rows of the encoder embedding
    tgt_vocab_size: int  # rows of the decoder embedding and columns of the output layer
    emb_dim: int = 256  # token embedding width (encoder and decoder)
    hidden_dim: int = 512  # RNN state width per direction
    n_layers: int = 2  # stacked RNN layers in encoder and decoder
    dropout: float = 0.3  # on embeddings, between RNN layers and before the output layer
    cell: str = "lstm"  # "lstm" | "gru"
    bidirectional: bool = False  # encoder reads both ways; a bridge merges states per layer
    attention: str | None = None  # None (context vector = final state) | "luong" (general)
    tie_embeddings: bool = False  # decoder output layer shares the decoder embedding matrix

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "emb_dim", "hidden_dim", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self, name) <= UNK_ID + 1:
                raise ValueError(f"ModelConfig.{name} must exceed the 4 special tokens")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.cell not in CELLS:
            raise ValueError(f"ModelConfig.cell must be one of {CELLS}, got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"ModelConfig.attention must be one of {ATTENTIONS}, got {self.attention!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return strict_from_dict(cls, data)


RnnState = tuple[Tensor, ...]  # (h,) for GRU, (h, c) for LSTM; each [layers, batch, hidden]


class Memory(NamedTuple):
    """What the decoder reads from the encoder at every step."""

    keys: Tensor  # encoder outputs: [batch, src_len, enc_dim]
    keys_proj: Tensor  # W_a · keys, precomputed once: [batch, src_len, hidden]
    mask: Tensor  # True on real source tokens: [batch, src_len]


class DecodeState(NamedTuple):
    """Everything a decoding step needs per row; every tensor has the batch in a fixed dim."""

    rnn: RnnState  # batch in dim 1
    memory: Memory | None  # batch in dim 0; None without attention


def _make_rnn(cfg: ModelConfig, input_dim: int, bidirectional: bool) -> nn.LSTM | nn.GRU:
    rnn_cls = nn.LSTM if cfg.cell == "lstm" else nn.GRU
    return rnn_cls(
        input_dim,
        cfg.hidden_dim,
        cfg.n_layers,
        batch_first=True,
        dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )


def _as_tuple(state: Tensor | tuple[Tensor, ...]) -> RnnState:
    return tuple(state) if isinstance(state, tuple) else (state,)


def _for_rnn(state: RnnState) -> Tensor | tuple[Tensor, Tensor]:
    return (state[0], state[1]) if len(state) == 2 else state[0]


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(cfg.src_vocab_size, cfg.emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = _make_rnn(cfg, cfg.emb_dim, cfg.bidirectional)

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, RnnState]:
        """Outputs ``[batch, src_len, hidden * directions]`` (zero on padding) and the state
        after each row's last real token: padding never leaks into either."""
        emb = self.dropout(self.embedding(src))  # emb: [batch, src_len, emb]
        if self.rnn.bidirectional:
            return self._packed(emb, lengths, None)
        # Packed sequences run step by step on CPU; the prefix every row fills is run as one
        # dense call, and only the ragged tail is packed.
        shortest = int(lengths.min())
        head, state = self.rnn(emb[:, :shortest])
        if shortest == src.size(1):
            return head, _as_tuple(state)
        rows = (lengths > shortest).nonzero().squeeze(1)
        start = tuple(part.index_select(1, rows) for part in _as_tuple(state))
        tail, tail_state = self._packed(emb[rows, shortest:], lengths[rows] - shortest, start)
        outputs = head.new_zeros(src.size(0), src.size(1) - shortest, head.size(2))
        outputs = torch.cat([head, outputs.index_copy(0, rows, tail)], dim=1)
        merged = tuple(
            part.index_copy(1, rows, new)
            for part, new in zip(_as_tuple(state), tail_state, strict=True)
        )
        return outputs, merged

    def _packed(
        self, emb: Tensor, lengths: Tensor, state: RnnState | None
    ) -> tuple[Tensor, RnnState]:
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, final = self.rnn(packed, None if state is None else _for_rnn(state))
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=emb.size(1))
        return outputs, _as_tuple(final)


class Bridge(nn.Module):
    """Turns a bidirectional encoder's final states into the one-directional decoder's."""

    def __init__(self, cfg: ModelConfig, n_parts: int) -> None:
        super().__init__()
        h = cfg.hidden_dim
        self.proj = nn.ModuleList(nn.Linear(2 * h, h) for _ in range(n_parts))

    def forward(self, state: RnnState) -> RnnState:
        merged = []
        for part, proj in zip(state, self.proj, strict=True):
            layers2, batch, hidden = part.shape
            # part: [layers * 2, batch, hidden] -> [layers, batch, 2 * hidden]
            both = part.view(layers2 // 2, 2, batch, hidden).permute(0, 2, 1, 3)
            merged.append(torch.tanh(proj(both.reshape(layers2 // 2, batch, 2 * hidden))))
        return tuple(merged)


class LuongAttention(nn.Module):
    """Luong et al. (2015) "general" attention: score(h_t, h_s) = h_t · W_a h_s.

    It reads the decoder RNN's outputs (no input feeding), so with teacher forcing the whole
    target attends in one batched matmul instead of one call per step.
    """

    def __init__(self, hidden_dim: int, enc_dim: int) -> None:
        super().__init__()
        self.key_proj = nn.Linear(enc_dim, hidden_dim, bias=False)
        self.combine = nn.Linear(hidden_dim + enc_dim, hidden_dim, bias=False)

    def memory(self, keys: Tensor, mask: Tensor) -> Memory:
        return Memory(keys=keys, keys_proj=self.key_proj(keys), mask=mask)

    def forward(self, query: Tensor, memory: Memory) -> Tensor:
        scores = torch.bmm(query, memory.keys_proj.transpose(1, 2))  # [batch, tgt_len, src_len]
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        context = torch.bmm(scores.softmax(dim=-1), memory.keys)  # [batch, tgt_len, enc_dim]
        return torch.tanh(self.combine(torch.cat([context, query], dim=-1)))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        enc_dim = cfg.hidden_dim * (2 if cfg.bidirectional else 1)
        self.embedding = nn.Embedding(cfg.tgt_vocab_size, cfg.emb_dim, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(cfg.dropout)
        self.rnn = _make_rnn(cfg, cfg.emb_dim, bidirectional=False)
        self.attention = LuongAttention(cfg.hidden_dim, enc_dim) if cfg.attention else None
        # Tying needs the output layer's input to live in embedding space.
        tie = cfg.tie_embeddings
        self.out_proj = nn.Linear(cfg.hidden_dim, cfg.emb_dim) if tie else None
        self.out = nn.Linear(cfg.emb_dim if tie else cfg.hidden_dim, cfg.tgt_vocab_size)
        if tie:
            self.out.weight = self.embedding.weight

    def forward(self, tokens: Tensor, state: DecodeState) -> tuple[Tensor, RnnState]:
        emb = self.dropout(self.embedding(tokens))  # emb: [batch, steps, emb]
        outputs, rnn = self.rnn(emb, _for_rnn(state.rnn))  # outputs: [batch, steps, hidden]
        return self.head(outputs, state.memory), _as_tuple(rnn)

    def head(self, outputs: Tensor, memory: Memory | None) -> Tensor:
        """RNN outputs ``[batch, steps, hidden]`` → logits ``[batch, steps, vocab]``."""
        return self.out(self.features(outputs, memory))

    def features(self, outputs: Tensor, memory: Memory | None) -> Tensor:
        """RNN outputs → what the vocabulary projection ``self.out`` reads."""
        if self.attention is not None:
            assert memory is not None
            outputs = self.attention(outputs, memory)
        outputs = self.dropout(outputs)
        if self.out_proj is not None:
            outputs = self.out_proj(outputs)
        return outputs


class Seq2Seq(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        n_parts = 2 if config.cell == "lstm" else 1
        self.bridge = Bridge(config, n_parts) if config.bidirectional else None
        self.decoder = Decoder(config)

    @property
    def src_vocab_size(self) -> int:
        return self.config.src_vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        return self.config.tgt_vocab_size

    def encode(self, src: Tensor) -> DecodeState:
        """Encodes right-padded sources ``[batch, src_len]``; every row needs a real token."""
        mask = src != PAD_ID
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            raise ValueError("src: every sequence needs at least one non-padding token")
        outputs, rnn = self.encoder(src, lengths)
        if self.bridge is not None:
            rnn = self.bridge(rnn)
        attention = self.decoder.attention
        memory = attention.memory(outputs, mask) if attention is not None else None
        return DecodeState(rnn=rnn, memory=memory)

    def decode_step(self, tokens: Tensor, state: DecodeState) -> tuple[Tensor, DecodeState]:
        """One step for every row: ``tokens [rows]`` → log-probabilities ``[rows, vocab]``."""
        logits, rnn = self.decoder(tokens.unsqueeze(1), state)
        return logits.squeeze(1).float().log_softmax(dim=-1), DecodeState(rnn, state.memory)

    @staticmethod
    def reorder_state(
        state: DecodeState, index: Tensor, within_sources: bool = False
    ) -> DecodeState:
        """Selects (and repeats) rows of a decoding state, e.g. beam parents or expansions.

        ``within_sources``: each row moves to a row of the same source (a beam search
        picking parents), so the encoder memory, the same on every row of a source, stays
        put. Copying it would move [rows, src_len, enc_dim + hidden] floats every step,
        which at batch 32 × beam 6 × 64 source tokens costs more than the step itself."""
        rnn = tuple(part.index_select(1, index) for part in state.rnn)
        memory = state.memory
        if memory is not None and not within_sources:
            memory = Memory(*(t.index_select(0, index) for t in memory))
        return DecodeState(rnn, memory)

    def forward(self, src: Tensor, tgt: Tensor, teacher_forcing_ratio: float = 1.0) -> Tensor:
        """Logits ``[batch, tgt_len - 1, vocab]``; ``logits[:, t]`` predicts ``tgt[:, t + 1]``."""
        state = self.encode(src)
        inputs = tgt[:, :-1]
        if teacher_forcing_ratio >= 1.0:
            # Fast path: the decoder consumes the whole target in one RNN call.
            logits, _ = self.decoder(inputs, state)
            return logits
        return self._free_running(inputs, state, teacher_forcing_ratio)

    def target_log_probs(
        self, src: Tensor, tgt: Tensor, scored: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Teacher-forced log p(tgt[:, t + 1] | src, tgt[:, :t + 1]) at the scored target
        positions, flattened row by row, with their mask ``[batch, tgt_len - 1]``: the real
        (non-pad) positions, or ``scored`` where given (a subset of them). The numbers of
        ``forward`` gathered at the gold tokens, but attention and the vocabulary projection
        run only where there is a token to score (MMI scores short messages in long padded
        batches, and only their content words)."""
        state = self.encode(src)
        emb = self.decoder.dropout(self.decoder.embedding(tgt[:, :-1]))  # [batch, steps, emb]
        outputs, _ = self.decoder.rnn(emb, _for_rnn(state.rnn))  # [batch, steps, hidden]
        gold = tgt[:, 1:]
        mask = gold != PAD_ID if scored is None else scored & (gold != PAD_ID)
        features = self._features_at(outputs, state.memory, mask)  # [tokens, out_dim]
        logits = self.decoder.out(features).float()  # logits: [tokens, vocab]
        picked = logits.gather(1, gold[mask].unsqueeze(1)).squeeze(1)
        return picked - logits.logsumexp(dim=-1), mask

    def _features_at(self, outputs: Tensor, memory: Memory | None, mask: Tensor) -> Tensor:
        """``decoder.features`` at the masked positions only: each row's positions attend as
        one short batch (rows keep their own memory), the others are never computed."""
        if memory is None:
            return self.decoder.features(outputs[mask], None)
        counts = mask.sum(dim=1)
        width = max(int(counts.max()), 1)
        packed = outputs.new_zeros(outputs.size(0), width, outputs.size(2))
        slots = torch.arange(width, device=mask.device) < counts.unsqueeze(1)  # [batch, width]
        packed[slots] = outputs[mask]
        return self.decoder.features(packed, memory)[slots]

    def _free_running(self, inputs: Tensor, state: DecodeState, ratio: float) -> Tensor:
        """Step by step; each row feeds the truth with probability ``ratio``, else its argmax."""
        steps = inputs.size(1)
        token = inputs[:, 0]
        outputs = []
        for t in range(steps):
            logits, rnn = self.decoder(token.unsqueeze(1), state)  # logits: [batch, 1, vocab]
            state = DecodeState(rnn, state.memory)
            outputs.append(logits)
            if t + 1 < steps:
                use_truth = torch.rand(token.shape, device=token.device) < ratio
                token = torch.where(use_truth, inputs[:, t + 1], logits[:, 0].argmax(dim=-1))
        return torch.cat(outputs, dim=1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
