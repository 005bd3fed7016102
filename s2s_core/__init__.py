"""The machine-learning core: tokenizer, Seq2Seq model, decoding, training, checkpoints.

It knows nothing of Celery, SQL or Telegram (docs/architecture.md); everything else builds on it.
"""

from s2s_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from s2s_core.decoding import DecodeConfig, Hypothesis, generate
from s2s_core.model import ModelConfig, Seq2Seq
from s2s_core.special import BOT_ID, EOS_ID, PAD_ID, SOS_ID, UNK_ID, USER_ID
from s2s_core.tokenizer import Tokenizer

__all__ = [
    "BOT_ID",
    "EOS_ID",
    "PAD_ID",
    "SOS_ID",
    "UNK_ID",
    "USER_ID",
    "CheckpointError",
    "DecodeConfig",
    "Hypothesis",
    "ModelConfig",
    "Seq2Seq",
    "Tokenizer",
    "generate",
    "load_checkpoint",
    "save_checkpoint",
]
