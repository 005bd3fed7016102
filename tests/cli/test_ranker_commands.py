"""`s2s train-ranker` and `s2s models index`: bad input is one line, a run resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2s_cli.main import app

runner = CliRunner()


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-ranker", "--out", str(tmp_path), "--steps", "0"])
    assert result.exit_code == 2 and "steps" in result.output
    result = runner.invoke(app, ["models", "index", "--model", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: checkpoint {tmp_path / 'nothing'}: not a directory"
    ]


@pytest.mark.slow
def test_a_ranker_fine_tune_saves_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "ranker"
    args = ["train-ranker", "--out", str(out), "--batch-size", "4", "--no-progress"]
    args += ["--threads", "1", "--device", "cpu"]
    first = runner.invoke(app, [*args, "--steps", "2"])
    assert first.exit_code == 0, repr(first.exception)
    assert (out / "progress.txt").read_text().startswith("2 steps")
    again = runner.invoke(app, [*args, "--steps", "3"])
    assert again.exit_code == 0, again.output
    assert (out / "progress.txt").read_text().startswith("3 steps")
    assert any(out.glob("*.safetensors"))


def test_reranker_bad_arguments_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-reranker", "--out", str(tmp_path), "--steps", "0"])
    assert result.exit_code == 2 and "steps" in result.output
    missing = tmp_path / "nothing"
    result = runner.invoke(app, ["train-reranker", "--out", str(tmp_path), "--init", str(missing)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: --init {missing}: not an encoder folder"]


@pytest.mark.slow
def test_a_reranker_trains_saves_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "reranker"
    args = ["train-reranker", "--out", str(out), "--layers", "1", "--batch-size", "2"]
    args += ["--no-progress", "--threads", "1", "--device", "cpu"]
    first = runner.invoke(app, [*args, "--steps", "2"])
    assert first.exit_code == 0, repr(first.exception)
    assert (out / "progress.txt").read_text().startswith("2 steps")
    again = runner.invoke(app, [*args, "--steps", "3"])
    assert again.exit_code == 0, again.output
    assert (out / "progress.txt").read_text().startswith("3 steps")
    assert (out / "score_head.safetensors").is_file()
