"""The retraining cycle: export logged pairs → fine-tune the active model on them (mixed with
its original corpus) → replay candidate against the active model → register the candidate →
promote it only when the gate passes. Fine-tuning sees the fine-tune part of the logged
conversations only; replay and the gate read the held-out part (``export.in_part``). The
same function serves ``s2s retrain`` and the ``s2s.retrain`` task (training queue)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from s2s_core.checkpoint import load_checkpoint, weights_digest
from s2s_core.recipe import DataConfig, new_run
from s2s_core.train import fine_tune_config
from worker.replay import Gate, compare, load_inputs, replay_model, write_report
from worker.store import DialogueStore
from worker.store.export import HELD_OUT_SHARE, ExportFilter, export_pairs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainPlan:
    baseline: Path  # the model to improve (the active one)
    out_root: Path  # runs/<timestamp>/ is made under it
    epochs: int = 1
    mix: float = 0.5  # share of original-corpus pairs in the fine-tuning data
    mix_with: str = "chitchat"
    replay_limit: int = 500
    min_pairs: int = 20  # fewer exported pairs: nothing to learn from yet
    gate: Gate = field(default_factory=Gate)
    device: str = "auto"


def retrain(store: DialogueStore, plan: RetrainPlan, progress: bool = False) -> dict[str, Any]:
    run_dir = plan.out_root / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=False)
    pairs_file = run_dir / "pairs.jsonl"  # what the candidate learns from
    with open(pairs_file, "w", encoding="utf-8") as f:
        counts = export_pairs(store, f, ExportFilter(part="fine-tune"), progress=progress)
    with open(run_dir / "held_out.jsonl", "w", encoding="utf-8") as f:  # what it is judged on
        held_out = export_pairs(store, f, ExportFilter(part="held-out"))
    split = {
        "rule": "export.in_part: a fixed hash of the conversation id",
        "held_out_share": HELD_OUT_SHARE,
        "fine_tune_pairs": counts["human"] + counts["liked"],
        "held_out_pairs": held_out["human"] + held_out["liked"],
    }
    (run_dir / "split.json").write_text(json.dumps(split, indent=2))
    exported = counts["human"] + counts["liked"]
    if exported < plan.min_pairs:
        needed = plan.min_pairs - exported
        log.info(
            "retrain: %d exported pairs, %d more needed (--min-pairs %d); nothing done",
            exported,
            needed,
            plan.min_pairs,
        )
        return {
            "run": str(run_dir),
            "exported": dict(counts),
            "split": split,
            "registered": None,
            "promoted": False,
            "pairs_needed": needed,
        }

    _, _, base_meta = load_checkpoint(plan.baseline)
    base_data = base_meta.get("data", {})
    data = DataConfig(
        task="jsonl",
        path=str(pairs_file),
        vocab_size=int(base_data.get("vocab_size", 8000)),
        context_turns=int(base_data.get("context_turns", 3)),
        max_src_len=int(base_data.get("max_src_len", 64)),
        max_tgt_len=int(base_data.get("max_tgt_len", 32)),
        mix=plan.mix,
        mix_with=plan.mix_with,
    )
    candidate_dir = run_dir / "candidate"
    trainer = new_run(
        candidate_dir,
        data,
        {},
        fine_tune_config(epochs=plan.epochs),
        plan.device,
        init_from=plan.baseline,
        command=f"retrain from {plan.baseline} on {pairs_file} (mix {plan.mix} {plan.mix_with})",
    )
    trainer.show_progress = progress
    trainer.run()

    inputs = load_inputs(store, plan.replay_limit, part="held-out")
    # Bars only for a person watching: in the trainer process each redraw would be a
    # WARNING line of Celery's redirected stderr.
    candidate = replay_model("candidate", candidate_dir, inputs, progress)
    baseline = replay_model("baseline", plan.baseline, inputs, progress)
    compare(candidate, baseline)
    verdict = plan.gate.verdict(candidate, baseline)
    summary = write_report(run_dir / "replay", inputs, candidate, baseline, verdict)

    version = weights_digest(candidate_dir)
    store.registry.register_model(version, str(candidate_dir.resolve()), {"replay": summary})
    if verdict[0]:
        store.registry.promote(version)
        log.info("retrain: promoted %s (%s)", version[:12], "; ".join(verdict[1]))
    else:
        log.info("retrain: %s held back (%s)", version[:12], "; ".join(verdict[1]))
    return {
        "run": str(run_dir),
        "exported": dict(counts),
        "split": split,
        "registered": version,
        "promoted": verdict[0],
        "reasons": verdict[1],
        "report": str(run_dir / "replay" / "report.html"),
    }
