"""The s2s command line: help everywhere, a real train → generate → eval round trip, and
clear errors for bad arguments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from s2s_cli.main import app

runner = CliRunner()
TINY = [
    "--task",
    "reverse",
    "--vocab-size",
    "300",
    "--emb-dim",
    "16",
    "--hidden-dim",
    "24",
    "--layers",
    "1",
    "--dropout",
    "0",
    "--max-steps",
    "20",
    "--no-progress",
    "--max-src-len",
    "40",
    "--max-tgt-len",
    "40",
]


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["train"],
        ["eval"],
        ["generate"],
        ["chat"],
        ["worker"],
        ["bot"],
        ["export"],
        ["replay"],
        ["retrain"],
        ["models", "retire"],
        ["models", "export"],
        ["models", "card"],
        ["db", "upgrade"],
        ["bench", "decode"],
        ["bench", "train"],
    ],
)
def test_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    result = runner.invoke(app, ["train", "--out", str(out), *TINY, "--attention", "luong"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_checkpoint_and_report(trained: Path) -> None:
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "metrics.json",
        "MODEL_CARD.md",
        "loss_curve.png",
    ):
        assert (trained / name).is_file(), name
    meta = json.loads((trained / "metrics.json").read_text())
    assert meta["command"].startswith("s2s train --out")
    assert meta["training"]["steps"] == 20


def test_resume_continues(trained: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", "--out", str(trained), "--resume", "--max-steps", "25", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((trained / "metrics.json").read_text())["training"]["steps"] == 25
    missing = runner.invoke(app, ["train", "--out", str(tmp_path), "--resume"])
    assert missing.exit_code == 2 and "nothing to resume" in missing.output


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sibling", "hamming", "sample"])
def test_generate_one_line_per_input(trained: Path, strategy: str) -> None:
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(trained),
            "--strategy",
            strategy,
            "--max-len",
            "12",
            "--seed",
            "1",
        ],
        input="a b c\nd e f g\n\n",
    )
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


def test_generate_n_best_prints_scores(trained: Path) -> None:
    result = runner.invoke(
        app,
        ["generate", "--model", str(trained), "--n-best", "3", "--max-len", "8"],
        input="a b c\n",
    )
    assert result.exit_code == 0, result.output
    scored = [line for line in result.stdout.splitlines() if line]
    assert len(scored) == 3
    scores = [float(line.split("\t")[0]) for line in scored]
    assert scores == sorted(scores, reverse=True)


def test_eval_reports_json(trained: Path) -> None:
    result = runner.invoke(
        app,
        ["eval", "--model", str(trained), "--limit", "20", "--strategies", "ppl,greedy,hamming"],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["pairs"] == 20 and report["perplexity"]["perplexity"] > 1
    for name in ("greedy", "hamming"):
        assert {"bleu", "distinct_1", "distinct_2", "mean_len_words", "distinct_replies"} <= set(
            report[name]
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--out", "{tmp}", "--task", "nope"], "task"),
        (["train", "--out", "{tmp}", "--task", "tsv"], "needs a data file"),
        (["train", "--out", "{tmp}", "--cell", "rnn", *TINY], "cell"),
        (["train", "--out", "{tmp}", "--tf-schedule", "cosine", *TINY], "tf_schedule"),
        (["generate", "--model", "{tmp}/missing"], "not a directory"),
        (["generate", "--model", "{model}", "--strategy", "nope"], "strategy"),
        (["generate", "--model", "{model}", "--beam-size", "0"], "beam_size"),
        (["generate", "--model", "{model}", "--n-best", "9"], "n_best"),
        (["eval", "--model", "{model}", "--split", "dev"], "split"),
        (["eval", "--model", "{model}", "--strategies", "ppl,nope"], "strategy"),
        (["train", "--out", "{tmp}", "--max-minutes", "0", *TINY], "max_minutes"),
        (["train", "--out", "{tmp}", "--mix", "0.5", *TINY], "--task tsv or jsonl"),
        (["train", "--out", "{tmp}", "--task", "tsv", "--data", "x", "--mix", "1"], "mix"),
        (["models", "export", "{model}", "{tmp}/x", "--dtype", "int8"], "--dtype"),
        (["models", "export", "{model}", "{model}"], "different output folder"),
        (["models", "export", "{tmp}/missing", "{tmp}/x"], "not a directory"),
        (["models", "export", "{model}", "{tmp}/x", "--backward", "{tmp}/nope"], "not a dir"),
        (["train", "--out", "{tmp}", "--direction", "sideways", *TINY], "direction"),
        (["train", "--out", "{tmp}", "--clean", *TINY], "apply to --task chitchat"),
        (["train", "--out", "{tmp}", "--refine-alpha", "1.5", *TINY], "--refine-alpha"),
        (["train", "--out", "{tmp}", "--refine-alpha", "0.2", *TINY], "--task chitchat"),
        (["train", "--out", "{tmp}", "--tokenizer-from", "{tmp}/nope", *TINY], "tokenizer"),
        (["eval", "--model", "{model}", "--messages", "{tmp}/none.txt"], "none.txt"),
        (["train", "--out", "{tmp}", "--device", "gpu", *TINY], "Invalid value for '--device'"),
        (["eval", "--model", "{model}", "--device", "cuda:x"], "Invalid value for '--device'"),
        (["generate", "--model", "{model}", "--device", "tpu"], "Invalid value for '--device'"),
        (["chat", "--model", "{model}", "--device", "gpu"], "Invalid value for '--device'"),
    ],
)
def test_bad_arguments_fail_clearly(
    args: list[str], message: str, tmp_path: Path, trained: Path
) -> None:
    filled = [a.format(tmp=tmp_path, model=trained) for a in args]
    result = runner.invoke(app, filled, input="a b\n")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_chat_answers_one_line_per_input_line_and_keeps_history(
    trained: Path, tmp_path: Path
) -> None:
    from worker.store import DialogueStore

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'chat.sqlite3'}"}
    for _ in range(2):
        result = runner.invoke(
            app, ["chat", "--model", str(trained)], input="a b c\n\nd e\n", env=env
        )
        assert result.exit_code == 0, result.output
        assert len(result.stdout.splitlines()) == 3
    store = DialogueStore(env["DATABASE_URL"])
    history = store.recent_context(1, 10)
    assert [text for speaker, text in history if speaker == "user"] == ["a b c", "d e"] * 2
    store.engine.dispose()


def test_a_piped_script_can_reset_and_quit(trained: Path, tmp_path: Path) -> None:
    """`/reset` in a script starts a new conversation (an empty line keeps the lines
    aligned), `/quit` ends the script: a scripted session can hold several conversations."""
    from worker.store import DialogueStore

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'chat.sqlite3'}"}
    script = "a b c\n/reset\nd e\n/quit\nnever sent\n"
    result = runner.invoke(app, ["chat", "--model", str(trained)], input=script, env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
    store = DialogueStore(env["DATABASE_URL"])
    assert [text for _, text in store.recent_context(1, 10)][:1] == ["d e"]  # a new one
    store.engine.dispose()


def test_a_pointer_model_trains_and_answers(tmp_path: Path) -> None:
    """``--pointer``: the copying decoder through train, checkpoint and generate."""
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--attention", "luong", "--pointer"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["model"]["pointer"] is True
    result = runner.invoke(
        app, ["generate", "--model", str(out), "--max-len", "12"], input="a b c\n"
    )
    assert result.exit_code == 0 and result.output.strip(), result.output


def test_a_pointer_without_attention_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run"), *TINY, "--pointer"])
    assert result.exit_code == 2, result.output
    assert "needs attention" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_fine_tuning_on_an_empty_export_says_so(tmp_path: Path, trained: Path) -> None:
    empty = tmp_path / "pairs.jsonl"
    empty.write_text("")
    args = ["train", "--out", str(tmp_path / "ft"), "--init-from", str(trained)]
    args += ["--task", "jsonl", "--data", str(empty), "--max-steps", "5", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "no training pairs" in result.output, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "ft").exists()  # nothing half-made for a later --out or --resume
    kept = tmp_path / "kept"
    (kept / "notes.txt").parent.mkdir()
    (kept / "notes.txt").write_text("mine")
    args[2] = str(kept)
    assert runner.invoke(app, args).exit_code == 2
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]  # only what this run made goes


def test_chat_serves_what_the_bot_serves(trained: Path, tmp_path: Path) -> None:
    """Without --model, s2s chat answers with the registry's active version (as the bot and
    the workers do), else MODEL_DIR; --model picks a folder explicitly."""
    from worker.store import DialogueStore
    from worker.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'chat.sqlite3'}"
    upgrade(url)
    store = DialogueStore(url)
    env = {"DATABASE_URL": url, "MODEL_DIR": str(tmp_path / "nothing here")}
    store.registry.register_model("candidate-1", str(trained), {})
    store.registry.promote("candidate-1")
    result = runner.invoke(app, ["chat"], input="hello\n", env=env)
    assert result.exit_code == 0, result.output
    assert "candidate-1" in result.stderr and "registry" in result.stderr
    with store.engine.connect() as conn:
        served = conn.execute(text("SELECT model_version FROM generations")).scalars().all()
    assert served == ["candidate-1"]
    result = runner.invoke(app, ["chat", "--model", str(trained)], input="hi\n", env=env)
    assert result.exit_code == 0 and "(--model)" in result.stderr
    store.engine.dispose()


def test_chat_rejects_an_unknown_style(trained: Path) -> None:
    result = runner.invoke(app, ["chat", "--model", str(trained), "--style", "loud"])
    assert result.exit_code == 2 and "style" in result.output


def test_chat_without_a_model_explains(tmp_path: Path) -> None:
    env = {"MODEL_DIR": str(tmp_path / "none"), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    result = runner.invoke(app, ["chat"], env=env)
    assert result.exit_code == 2
    assert "not a directory" in result.output and "s2s train" in result.output


def test_worker_needs_redis() -> None:
    result = runner.invoke(app, ["worker"], env={"REDIS_URL": ""})
    assert result.exit_code == 2 and "REDIS_URL" in result.output


def test_eval_measures_the_reply_styles(trained: Path) -> None:
    result = runner.invoke(
        app, ["eval", "--model", str(trained), "--limit", "8", "--strategies", "varied,focused"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["varied"]["decode"]["diversity"] == "hamming"
    assert report["focused"]["decode"]["diversity"] == "none"


def test_export_to_float16_halves_the_weights_and_keeps_the_replies(
    trained: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fp16"
    result = runner.invoke(app, ["models", "export", str(trained), str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dtype"] == "float16"
    full, half = (d / "model.safetensors" for d in (trained, out))
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert (out / "loss_curve.png").is_file()
    replies = [
        runner.invoke(app, ["generate", "--model", str(d)], input="a b c\nd e f\n").stdout
        for d in (trained, out)
    ]
    assert replies[0] == replies[1]


def test_eval_answers_a_file_of_openers(trained: Path, tmp_path: Path) -> None:
    openers = tmp_path / "openers.txt"
    openers.write_text("# comment\na b c\n\nd e f\n")
    result = runner.invoke(
        app, ["eval", "--model", str(trained), "--messages", str(openers), "--strategies", "beam"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["pairs"] == 2 and "bleu" not in report["beam"]
    assert [s["context"] for s in report["beam"]["samples"]] == [["a b c"], ["d e f"]]
    assert report["beam"]["relevance"] is None  # too few contexts to rank against


def test_export_ships_a_backward_model_that_eval_uses(trained: Path, tmp_path: Path) -> None:
    back_dir = tmp_path / "back"
    args = ["train", "--out", str(back_dir), *TINY, "--direction", "backward"]
    result = runner.invoke(app, [*args, "--tokenizer-from", str(trained)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "with-mmi"
    exported = runner.invoke(
        app, ["models", "export", str(trained), str(out), "--backward", str(back_dir)]
    )
    assert exported.exit_code == 0, exported.output
    assert (out / "backward" / "model.safetensors").is_file()
    result = runner.invoke(
        app, ["eval", "--model", str(out), "--limit", "12", "--strategies", "varied"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["varied"]["mmi"]["weight"] == 0.5
    assert 0.0 <= report["varied"]["relevance"]["hits@1/10"] <= 1.0
    plain = runner.invoke(
        app, ["eval", "--model", str(out), "--limit", "12", "--strategies", "varied", "--no-mmi"]
    )
    assert "mmi" not in json.loads(plain.stdout[plain.stdout.index("{") :])["varied"]


def test_card_adds_evaluations_baselines_and_notes(trained: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    assert runner.invoke(app, ["models", "export", str(trained), str(model)]).exit_code == 0
    evaluation = tmp_path / "eval.json"
    args = ["eval", "--model", str(model), "--limit", "6", "--strategies", "ppl,greedy,hamming"]
    result = runner.invoke(app, [*args, "--output", str(evaluation)])
    assert result.exit_code == 0, result.output
    notes = tmp_path / "notes.md"
    notes.write_text("Trained for a test.\n\nSecond paragraph.\n")
    card_args = ["--eval", str(evaluation), "--baseline", str(trained), "--notes", str(notes)]
    result = runner.invoke(
        app, ["models", "card", str(model), *card_args, "--name", "Tiny reverser"]
    )
    assert result.exit_code == 0, result.output
    card = (model / "MODEL_CARD.md").read_text()
    assert card.startswith("# Tiny reverser\n")
    assert "| greedy |" in card and "| hamming |" in card and "**6.**" in card
    assert "## Baseline: " in card and "Second paragraph." in card
    meta = json.loads((model / "metrics.json").read_text())
    assert meta["evaluations"][0]["pairs"] == 6 and len(meta["notes"]) == 2


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"pairs": 3}'])
def test_card_refuses_what_is_not_an_eval_result(
    trained: Path, tmp_path: Path, content: str
) -> None:
    model = tmp_path / "model"
    assert runner.invoke(app, ["models", "export", str(trained), str(model)]).exit_code == 0
    before = (model / "metrics.json").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = runner.invoke(app, ["models", "card", str(model), "--eval", str(bad)])
    assert result.exit_code == 2 and str(bad) in result.output
    assert (model / "metrics.json").read_text() == before


@pytest.mark.integration
def test_chat_on_an_unmigrated_postgres_says_what_to_do(trained: Path) -> None:
    from tests.utils.databases import scratch_postgres

    with scratch_postgres() as url:
        result = runner.invoke(app, ["chat"], env={"DATABASE_URL": url}, input="hi\n")
    assert result.exit_code == 2
    assert "s2s db upgrade" in result.output and "Traceback" not in result.output


def test_retrain_runs_under_retrain_dir_and_says_how_many_pairs_are_missing(
    trained: Path, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dialogue.sqlite3'}",
        "MODEL_DIR": str(trained),
        "RETRAIN_DIR": str(tmp_path / "retrain"),
    }
    assert runner.invoke(app, ["db", "upgrade"], env=env).exit_code == 0
    result = runner.invoke(app, ["retrain", "--min-pairs", "5"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert Path(summary["run"]).parent == tmp_path / "retrain"  # the shared volume in compose
    assert summary["pairs_needed"] == 5 and summary["registered"] is None


def test_fine_tuning_takes_the_one_fine_tune_preset(trained: Path, tmp_path: Path) -> None:
    """`s2s train --init-from` (the README's manual recipe) and `s2s retrain` share one
    preset: a lower peak lr, warmup a tenth of the run, patience 1; options still win."""
    from s2s_core.train import fine_tune_config

    preset = fine_tune_config()
    for extra, lr in (([], preset.lr), (["--lr", "0.001"], 0.001)):
        out = tmp_path / f"ft{len(extra)}"
        args = ["train", "--out", str(out), "--init-from", str(trained), *TINY[:4], *extra]
        result = runner.invoke(app, [*args, "--max-steps", "3", "--no-progress"])
        assert result.exit_code == 0, result.output
        train = json.loads((out / "train_state" / "run.json").read_text())["train"]
        assert (train["lr"], train["warmup_steps"], train["patience"]) == (lr, None, 1)


@pytest.mark.slow
def test_replay_reproduces_the_live_replies_of_the_serving_model(tmp_path: Path) -> None:
    """What the bot said live (here through `s2s chat`, the worker's reply service
    in-process) is what replay decodes for the same model: same context window (a longer
    logged context gave the shipped model other replies), same settings, same n-best choice."""
    shipped = Path(__file__).resolve().parents[2] / "models" / "default"
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite3'}"}
    lines = [
        "hi! how are you?",
        "I just got back from a long hike in the mountains.",
        "Do you like cooking? I made lasagna yesterday.",
        "What kind of music do you listen to?",
        "I started running every morning this week.",
        "Have you ever been to Europe?",
    ]
    chat = runner.invoke(app, ["chat", "--model", str(shipped)], env=env, input="\n".join(lines))
    assert chat.exit_code == 0, chat.output
    out = tmp_path / "replay"
    args = ["replay", "--candidate", str(shipped), "--baseline", str(shipped), "--part", "all"]
    result = runner.invoke(app, [*args, "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    baseline = json.loads((out / "report.json").read_text())["baseline"]
    assert baseline["own_live_replies"] == len(lines)
    assert baseline["reproduces_live"] == 1.0


def test_the_cli_and_the_model_agree_on_dropout() -> None:
    """One default: the CLI cannot import the model (torch stays out of torch-free commands),
    so the two are pinned together here."""
    import inspect

    from s2s_cli.train_eval import train
    from s2s_core.model import ModelConfig

    assert inspect.signature(train).parameters["dropout"].default == ModelConfig.dropout


def test_a_fine_tune_answers_through_its_origins_stages(trained: Path, tmp_path: Path) -> None:
    """`s2s train --init-from` carries the origin's backward model, ranker and tuned reply
    settings: the fine-tuned candidate reranks by MMI and ranks corpus replies as its
    baseline does (replay and compare then measure the weights, not a missing stage)."""
    from s2s_core import load_checkpoint
    from s2s_core.mmi import load_backward

    origin = tmp_path / "origin"
    shutil.copytree(trained, origin)
    shutil.copytree(trained, origin / "backward")  # a backward model sharing the tokenizer
    (origin / "ranker").mkdir()
    (origin / "ranker" / "modules.json").write_text("[]")
    meta = json.loads((origin / "metrics.json").read_text())
    meta["mmi"] = {"weight": 0.7, "length_bonus": 0.01, "content_only": True}
    meta["hybrid"] = {"retrieved": 12, "forward_weight": 0.0, "backward_weight": 0.0}
    (origin / "metrics.json").write_text(json.dumps(meta))
    out = tmp_path / "ft"
    args = ["train", "--out", str(out), "--init-from", str(origin), *TINY[:4]]
    result = runner.invoke(app, [*args, "--max-steps", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    _, tokenizer, tuned = load_checkpoint(out)
    assert tuned["mmi"] == meta["mmi"] and tuned["hybrid"] == meta["hybrid"]
    backward = load_backward(out, tokenizer, tuned)
    assert backward is not None and backward.cfg.weight == 0.7
    assert (out / "ranker" / "modules.json").read_text() == "[]"
