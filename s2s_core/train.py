"""The trainer: Adam, clipping, warmup + plateau decay, teacher-forcing schedules, early
stopping, resumable state, progress bar, metrics JSON and a loss-curve PNG."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from s2s_core.checkpoint import save_checkpoint
from s2s_core.data import BucketBatchSampler, PairDataset, collate
from s2s_core.metrics import perplexity
from s2s_core.model import Seq2Seq
from s2s_core.plots import plot_loss_curve
from s2s_core.schedules import TF_SCHEDULES, teacher_forcing_ratio, warmup_lr
from s2s_core.special import PAD_ID
from s2s_core.tokenizer import Tokenizer
from s2s_core.train_state import TrainProgress, load_train_state, save_train_state

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 10  # full passes over the training set (early stopping may end sooner)
    batch_size: int = 64  # pairs per step
    lr: float = 1e-3  # Adam peak learning rate
    warmup_steps: int | None = 200  # linear warmup from 0 to lr; None: auto_warmup
    plateau_factor: float = 0.5  # lr multiplier after an epoch without validation gain
    clip: float = 1.0  # max global gradient norm
    label_smoothing: float = 0.0  # cross-entropy smoothing (0 = exact likelihood)
    tf_schedule: str = "constant"  # teacher forcing: constant | linear | inverse_sigmoid
    tf_ratio: float = 1.0  # teacher forcing at step 0 (the constant ratio when constant)
    tf_floor: float = 0.0  # where the decaying schedules end
    tf_decay_steps: int = 10_000  # steps the decay takes (inverse sigmoid: 2x its midpoint)
    patience: int = 3  # epochs without validation gain before stopping
    seed: int = 0  # model init, batch order and teacher-forcing coins
    max_steps: int | None = None  # stop after this many optimizer steps in total
    max_minutes: float | None = None  # stop this invocation after so much wall time (resumable)
    save_every_s: float = 300.0  # resumable state at least this often (seconds)
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        if self.tf_schedule not in TF_SCHEDULES:
            raise ValueError(f"TrainConfig.tf_schedule must be one of {TF_SCHEDULES}")
        if not 0.0 <= self.tf_floor <= self.tf_ratio <= 1.0:
            raise ValueError("TrainConfig needs 0 <= tf_floor <= tf_ratio <= 1")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError("TrainConfig.max_minutes must be positive")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1")
        if self.lr <= 0 or self.clip <= 0:
            raise ValueError("TrainConfig.lr and TrainConfig.clip must be positive")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError("TrainConfig.warmup_steps must be >= 0 (or None: automatic)")


@dataclass
class Batch:
    src: Tensor
    tgt: Tensor
    tokens: int  # real (non-padding) target tokens predicted


def masked_nll(logits: Tensor, tgt: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy over real target tokens; padding is ignored."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        tgt[:, 1:].reshape(-1),
        ignore_index=PAD_ID,
        label_smoothing=label_smoothing,
    )


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; full precision elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_loss(
    model: Seq2Seq, data: PairDataset, batch_size: int, device: torch.device
) -> float:
    """Mean per-token negative log-likelihood with teacher forcing, in eval mode."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for indices in BucketBatchSampler(data.bucket_keys(), batch_size, 0, shuffle=False):
        src, tgt = (t.to(device) for t in collate([data[i] for i in indices]))
        with autocast(device):
            logits = model(src, tgt)
        n = int((tgt[:, 1:] != PAD_ID).sum())
        total += float(masked_nll(logits, tgt)) * n
        tokens += n
    model.train(was_training)
    return total / max(tokens, 1)


FINE_TUNE_LR = 3e-4  # peak lr of the fine-tuning preset (from scratch: TrainConfig.lr)


def fine_tune_config(**overrides: Any) -> TrainConfig:
    """The one fine-tuning recipe, used by ``s2s train --init-from`` and ``s2s retrain``: a
    lower peak learning rate than from scratch, automatic warmup (a tenth of the run), and
    a stop after one epoch without validation gain."""
    return TrainConfig(**{"lr": FINE_TUNE_LR, "warmup_steps": None, "patience": 1, **overrides})


@dataclass
class Trainer:
    model: Seq2Seq
    tokenizer: Tokenizer
    train_set: PairDataset
    valid_set: PairDataset
    cfg: TrainConfig
    out_dir: Path
    meta: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)
        self.sampler = BucketBatchSampler(
            self.train_set.bucket_keys(), self.cfg.batch_size, self.cfg.seed
        )
        self.progress = TrainProgress()
        self._deadline = math.inf  # set by run() from max_minutes
        self.state_dir = self.out_dir / "train_state"

    @property
    def warmup_steps(self) -> int:
        """The configured warmup, or (None) a tenth of the whole run, at most 200 steps: a
        fine-tune of a few dozen pairs takes a handful of steps and must reach its learning
        rate within them (a fixed 200-step warmup left such a run at lr/200)."""
        if self.cfg.warmup_steps is not None:
            return self.cfg.warmup_steps
        total = len(self.sampler) * self.cfg.epochs
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        return min(200, max(1, total // 10))

    def resume(self) -> None:
        """Continues from the last saved state: same weights, optimizer, position and curve."""
        self.progress = load_train_state(self.state_dir, self.model, self.optimizer)
        torch.manual_seed(self.cfg.seed + self.progress.step)
        log.info("resumed at epoch %d, step %d", self.progress.epoch, self.progress.step)

    def run(self) -> dict[str, Any]:
        torch.manual_seed(self.cfg.seed + self.progress.step)
        minutes = self.cfg.max_minutes
        self._deadline = time.monotonic() + minutes * 60 if minutes else math.inf
        p = self.progress
        first_step = p.step
        while p.epoch < self.cfg.epochs and not p.stopped:
            self._train_epoch()
            if p.batch_in_epoch < len(self.sampler):
                # Budget spent mid-epoch: validate what this call trained and keep the
                # position, so --resume continues the epoch.
                if p.step > first_step:
                    self._end_epoch(complete=False)
                break
            self._end_epoch(complete=True)
        self._save_state()
        return self._meta()

    def _budget_spent(self) -> bool:
        """Whether ``max_steps`` or this invocation's ``max_minutes`` is used up."""
        if self.cfg.max_steps is not None and self.progress.step >= self.cfg.max_steps:
            return True
        return time.monotonic() >= self._deadline

    def _train_epoch(self) -> None:
        p = self.progress
        self.sampler.set_epoch(p.epoch)
        batches = self.sampler.batches()
        self.model.train()
        bar = tqdm(
            total=len(batches),
            initial=p.batch_in_epoch,
            desc=f"epoch {p.epoch + 1}/{self.cfg.epochs}",
            disable=not self.show_progress,
            dynamic_ncols=True,
        )
        last_save, window_loss, window_tokens, window_start = (
            time.monotonic(),
            0.0,
            0,
            time.monotonic(),
        )
        with bar:
            while p.batch_in_epoch < len(batches) and not self._budget_spent():
                batch = self.make_batch(batches[p.batch_in_epoch])
                loss = self.train_step(batch)
                p.batch_in_epoch += 1
                window_loss += loss * batch.tokens
                window_tokens += batch.tokens
                if p.step % 50 == 0 or p.batch_in_epoch == len(batches):
                    p.curve.append([p.step, window_loss / max(window_tokens, 1)])
                    rate = window_tokens / max(time.monotonic() - window_start, 1e-9)
                    bar.set_postfix(loss=f"{p.curve[-1][1]:.3f}", tok_s=f"{rate:,.0f}")
                    window_loss, window_tokens, window_start = 0.0, 0, time.monotonic()
                bar.update(1)
                if time.monotonic() - last_save > self.cfg.save_every_s:
                    self._save_state()
                    last_save = time.monotonic()

    def make_batch(self, indices: list[int]) -> Batch:
        """Pads the training pairs at ``indices`` onto the device."""
        src, tgt = collate([self.train_set[i] for i in indices])
        tokens = int((tgt[:, 1:] != PAD_ID).sum())
        return Batch(src.to(self.device), tgt.to(self.device), tokens)

    def train_step(self, batch: Batch) -> float:
        """One optimizer step; returns the batch's mean token loss."""
        cfg, p = self.cfg, self.progress
        lr = warmup_lr(cfg.lr, p.step, self.warmup_steps, p.lr_factor)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        ratio = teacher_forcing_ratio(
            cfg.tf_schedule, p.step, cfg.tf_ratio, cfg.tf_floor, cfg.tf_decay_steps
        )
        with autocast(self.device):
            logits = self.model(batch.src, batch.tgt, teacher_forcing_ratio=ratio)
        loss = masked_nll(logits, batch.tgt, cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        self.optimizer.step()
        p.step += 1
        p.train_tokens += batch.tokens
        return loss.item()

    def _end_epoch(self, complete: bool) -> None:
        p, cfg = self.progress, self.cfg
        valid_loss = evaluate_loss(self.model, self.valid_set, cfg.batch_size, self.device)
        record = {
            "epoch": p.epoch + (1 if complete else p.batch_in_epoch / len(self.sampler)),
            "step": p.step,
            "train_loss": p.curve[-1][1] if p.curve else None,  # JSON null, never NaN
            "valid_loss": valid_loss,
            "valid_ppl": perplexity(valid_loss),
            "lr": warmup_lr(cfg.lr, p.step, self.warmup_steps, p.lr_factor),
        }
        p.history.append(record)
        log.info(
            "epoch %.2f: valid loss %.4f, ppl %.2f",
            record["epoch"],
            valid_loss,
            record["valid_ppl"],
        )
        if complete:
            p.epoch += 1
            p.batch_in_epoch = 0
        if valid_loss < p.best_valid_loss:
            p.best_valid_loss, p.bad_epochs = valid_loss, 0
            p.best = record
            self._save_best()
        elif complete:
            p.bad_epochs += 1
            p.lr_factor *= cfg.plateau_factor
            p.stopped = p.bad_epochs >= cfg.patience
        self._save_state()
        self._write_report()

    def _meta(self) -> dict[str, Any]:
        p = self.progress
        return {
            **self.meta,
            "train_config": asdict(self.cfg),
            "training": {
                "steps": p.step,
                "epochs": round(p.epoch + p.batch_in_epoch / len(self.sampler), 4),
                "train_tokens": p.train_tokens,
                "device": str(self.device),
            },
            "best": p.best,
            "history": p.history,
            "loss_curve": "loss_curve.png",
        }

    def _save_best(self) -> None:
        save_checkpoint(self.out_dir, self.model, self.tokenizer, self._meta())

    def _write_report(self) -> None:
        plot_loss_curve(self.progress.curve, self.progress.history, self.out_dir / "loss_curve.png")

    def _save_state(self) -> None:
        save_train_state(self.state_dir, self.model, self.optimizer, self.progress)
