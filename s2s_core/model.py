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
    pointer: bool = False  # the decoder may copy source tokens (Pointer below; needs attention)

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
        if self.pointer and self.attention is None:
            raise ValueError(
                "ModelConfig.pointer copies where attention points: it needs attention"
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
    copyable: Tensor | None = None  # a pointer model's: where it may copy from [batch, src_len]
    copy_ids: Tensor | None = None  # the target ids copying there writes (0 elsewhere)


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

    def scores(self, query: Tensor, memory: Memory) -> Tensor:
        """Unnormalized scores ``[batch, tgt_len, src_len]``, -inf on padding."""
        scores = torch.bmm(query, memory.keys_proj.transpose(1, 2))
        return scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))

    def forward(self, query: Tensor, memory: Memory, scores: Tensor | None = None) -> Tensor:
        scores = self.scores(query, memory) if scores is None else scores
        context = torch.bmm(scores.softmax(dim=-1), memory.keys)  # [batch, tgt_len, enc_dim]
        return torch.tanh(self.combine(torch.cat([context, query], dim=-1)))


# The pointer's gate starts at sigmoid(2) = 0.88 for writing: a plain model grown into a
# pointer model first behaves as it did, and learns where copying pays.
GATE_START = 2.0


class Pointer(nn.Module):
    """A pointer-generator head (See, Liu, Manning 2017, "Get To The Point"): each step's
    distribution mixes the vocabulary's with a copy of a source token,

        p(w) = g · softmax(logits)(w) + (1 - g) · Σ_{s: src_s = w} a_s,

    ``a`` being the attention's scores renormalized over the copyable source positions and
    ``g`` a learned gate on the attended state. Without it a retrieve-and-refine LSTM barely
    read its retrieved reply (perplexity 80.6 with the slot empty, 80.9 filled): writing a
    retrieved word meant learning it in the decoder's own vocabulary, copying it is one
    pointer. Copyable are the source tokens after the last one the target vocabulary has no
    row for (the refine marker), else all of them: a refine model copies from the retrieved
    reply, not from the conversation (repeating the user is a defect)."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.gate = nn.Linear(hidden_dim, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, GATE_START)

    @staticmethod
    def sources(src: Tensor, mask: Tensor, tgt_vocab_size: int) -> tuple[Tensor, Tensor]:
        """(copyable positions, the target id each one writes) of encoder inputs ``src``."""
        beyond = src >= tgt_vocab_size  # markers: no target row
        markers_after = beyond.flip(1).cumsum(1).flip(1)  # markers at or after each position
        copyable = mask & (markers_after == 0)
        return copyable, torch.where(copyable, src, torch.zeros_like(src))

    def forward(self, logits: Tensor, scores: Tensor, attended: Tensor, memory: Memory) -> Tensor:
        """Log-probabilities ``[batch, steps, vocab]`` of the mixture."""
        assert memory.copyable is not None and memory.copy_ids is not None
        copyable = memory.copyable.unsqueeze(1)  # [batch, 1, src_len]
        # Finite fill, not -inf: a row with nothing to copy must not softmax to NaN.
        copy = scores.float().masked_fill(~copyable, -1e9).softmax(dim=-1)
        write = torch.sigmoid(self.gate(attended).float())  # [batch, steps, 1]
        write = torch.where(copyable.any(dim=-1, keepdim=True), write, torch.ones_like(write))
        probs = write * logits.float().softmax(dim=-1)
        ids = memory.copy_ids.unsqueeze(1).expand(-1, scores.size(1), -1)
        probs = probs.scatter_add(-1, ids, (1.0 - write) * copy)
        return probs.clamp_min(1e-12).log()


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
        self.pointer = Pointer(cfg.hidden_dim) if cfg.pointer else None

    def forward(self, tokens: Tensor, state: DecodeState) -> tuple[Tensor, RnnState]:
        emb = self.dropout(self.embedding(tokens))  # emb: [batch, steps, emb]
        outputs, rnn = self.rnn(emb, _for_rnn(state.rnn))  # outputs: [batch, steps, hidden]
        return self.head(outputs, state.memory), _as_tuple(rnn)

    def head(self, outputs: Tensor, memory: Memory | None) -> Tensor:
        """RNN outputs ``[batch, steps, hidden]`` → logits ``[batch, steps, vocab]`` (a
        pointer model's are log-probabilities: what softmax, log-softmax, argmax and cross
        entropy make of them is the same)."""
        if self.attention is None:
            return self.out(self._to_vocab(outputs))
        assert memory is not None
        scores = self.attention.scores(outputs, memory)
        attended = self.attention(outputs, memory, scores)
        logits = self.out(self._to_vocab(attended))
        if self.pointer is None:
            return logits
        return self.pointer(logits, scores, attended, memory)

    def _to_vocab(self, outputs: Tensor) -> Tensor:
        """What the vocabulary projection ``self.out`` reads."""
        outputs = self.dropout(outputs)
        return self.out_proj(outputs) if self.out_proj is not None else outputs


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
        if memory is not None and self.decoder.pointer is not None:
            copyable, copy_ids = Pointer.sources(src, mask, self.config.tgt_vocab_size)
            memory = memory._replace(copyable=copyable, copy_ids=copy_ids)
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
            memory = Memory._make(None if t is None else t.index_select(0, index) for t in memory)
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
        logits = self._head_at(outputs, state.memory, mask).float()  # [tokens, vocab]
        picked = logits.gather(1, gold[mask].unsqueeze(1)).squeeze(1)
        return picked - logits.logsumexp(dim=-1), mask

    def _head_at(self, outputs: Tensor, memory: Memory | None, mask: Tensor) -> Tensor:
        """``decoder.head`` at the masked positions only: each row's positions attend as
        one short batch (rows keep their own memory), the others are never computed."""
        if memory is None:
            return self.decoder.head(outputs[mask], None)
        counts = mask.sum(dim=1)
        width = max(int(counts.max()), 1)
        packed = outputs.new_zeros(outputs.size(0), width, outputs.size(2))
        slots = torch.arange(width, device=mask.device) < counts.unsqueeze(1)  # [batch, width]
        packed[slots] = outputs[mask]
        return self.decoder.head(packed, memory)[slots]

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


def with_pointer(model: Seq2Seq) -> Seq2Seq:
    """``model`` with a pointer head (``Pointer``), every weight kept: a trained model learns
    to copy without starting over. ValueError for a model without attention."""
    grown = Seq2Seq(ModelConfig.from_dict(model.config.to_dict() | {"pointer": True}))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or not all(k.startswith("decoder.pointer.") for k in missing):
        raise ValueError(f"cannot grow a pointer: missing {missing}, unexpected {unexpected}")
    return grown.train(model.training)
