"""docker-compose.yml, the Dockerfiles and .env.example checked for what goes wrong in
deployments (no Docker engine here, so the files themselves are examined)."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from s2s_cli import worker_command
from s2s_contract.settings import Settings
from s2s_contract.tasks import RETRAIN_TASK, TASK_QUEUES, TRAINING_QUEUE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
LOCK = "requirements/constraints.txt"
READ_OUTSIDE_SETTINGS = {"LOG_FORMAT"}  # the CLI's --log-format envvar
COMPOSE_ONLY = {
    "RETRAIN_HOST_DIR",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "MODELS_DIR",
    "TORCH_INDEX_URL",
    "TORCH_SPEC",
    "S2S_VERSION",
}


def _documented_vars() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.M))


def _conditions(service: str) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in SERVICES[service]["depends_on"].items()}


def test_every_service_the_docs_name_exists() -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    named = set(
        re.findall(r"`(redis|postgres|migrate|bot|worker|worker-cpu|flower|prometheus)`", docs)
    )
    assert named and named <= set(SERVICES)
    assert {"redis", "postgres", "migrate", "bot", "worker"} <= set(SERVICES)


def test_healthchecks_fail_on_errors_and_early_readiness() -> None:
    redis_check = " ".join(SERVICES["redis"]["healthcheck"]["test"])
    assert "PONG" in redis_check and "grep" in redis_check
    assert "--appendonly" in SERVICES["redis"]["command"]
    assert "--requirepass" in SERVICES["redis"]["command"]
    assert "pg_isready -h 127.0.0.1" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    for name in ("bot", "worker"):
        assert SERVICES[name]["healthcheck"]["test"]


def test_start_order() -> None:
    assert _conditions("migrate") == {"postgres": "service_healthy"}
    for name in ("bot", "worker", "worker-cpu", "trainer"):
        assert _conditions(name) == {
            "migrate": "service_completed_successfully",
            "redis": "service_healthy",
        }
    assert SERVICES["migrate"]["command"] == ["s2s", "db", "upgrade"]


def test_workers_scale_and_reserve_a_gpu() -> None:
    for name in ("worker", "worker-cpu"):
        service = SERVICES[name]
        assert "container_name" not in service and "ports" not in service
        assert service["stop_grace_period"]
    devices = SERVICES["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and isinstance(devices[0]["count"], int)
    assert "deploy" not in SERVICES["worker-cpu"] and SERVICES["worker-cpu"]["profiles"] == ["cpu"]
    assert SERVICES["worker-cpu"]["environment"]["DEVICE"] == "cpu"
    for name in ("worker", "worker-cpu"):  # candidates one worker trains, all can load
        service = SERVICES[name]
        assert service["environment"]["RETRAIN_DIR"] == "/retrain"
        assert any(v.endswith(":/retrain") for v in service["volumes"])
    for name in ("flower", "prometheus"):
        assert SERVICES[name]["profiles"] == ["monitoring"]


def test_required_secrets_fail_fast() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for var in ("TELEGRAM_TOKEN", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert re.search(r"\$\{" + var + r":\?", text), var
    assert ":?" in SERVICES["bot"]["environment"]["TELEGRAM_TOKEN"]


def test_env_example_matches_what_is_read() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    documented = _documented_vars()
    assert fields <= documented, f"undocumented settings: {fields - documented}"
    known = fields | READ_OUTSIDE_SETTINGS | COMPOSE_ONLY
    assert documented <= known, f"documented but never read: {documented - known}"
    used_by_compose = set(
        re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text())
    )
    assert used_by_compose <= documented, used_by_compose - documented


@pytest.mark.parametrize("image", ["bot", "worker", "migrate"])
def test_images_are_multi_stage_non_root_with_healthchecks(image: str) -> None:
    text = (ROOT / "docker" / f"{image}.Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2
    final = text.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert ("HEALTHCHECK" in final) == (image != "migrate")  # migrate runs once and exits


def test_migrate_runs_on_a_light_image_without_torch() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["build"]["dockerfile"] == "docker/migrate.Dockerfile"
    assert migrate["image"].startswith("s2s-migrate:")
    text = (ROOT / "docker" / "migrate.Dockerfile").read_text()
    instructions = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "torch" not in instructions and "COPY s2s_core" not in instructions
    assert "COPY migrations" in instructions and "pip install --no-deps -e ." in instructions


def test_worker_builds_take_torch_spec_and_index_from_compose() -> None:
    for name in ("worker", "worker-cpu", "trainer"):
        args = SERVICES[name]["build"]["args"]
        assert args["TORCH_SPEC"].startswith("${TORCH_SPEC:-torch==")
        assert "TORCH_INDEX_URL" in args


def test_env_example_keeps_compose_defaults() -> None:
    """Copying .env.example to .env (as the guide says) must not override what compose
    defaults to: a value it sets uncommented must equal compose's default."""
    compose_defaults = dict(
        re.findall(r"\$\{([A-Z][A-Z0-9_]+):-([^}]*)\}", (ROOT / "docker-compose.yml").read_text())
    )
    set_values = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE, flags=re.M))
    for name, value in set_values.items():
        if name in compose_defaults:
            assert value == compose_defaults[name], f"{name}={value} overrides compose's default"


def test_retraining_runs_only_in_the_trainer() -> None:
    trainer = SERVICES["trainer"]
    assert trainer["command"][-4:] == ["--queues", TRAINING_QUEUE, "--concurrency", "1"]
    assert (
        trainer["profiles"] == ["training"] and trainer["environment"]["RETRAIN_DIR"] == "/retrain"
    )
    assert TASK_QUEUES[RETRAIN_TASK] == TRAINING_QUEUE
    serving = inspect.signature(worker_command.worker).parameters["queues"].default
    assert TRAINING_QUEUE not in serving.split(",")
    for name in ("worker", "worker-cpu"):
        assert SERVICES[name]["command"] == ["s2s", "worker"]


def test_installs_are_pinned_by_the_lock_file() -> None:
    """Images and ``make install`` take every library at the version the tests ran with, and
    the lock covers every dependency pyproject.toml names (torch is TORCH_SPEC's)."""
    lock = dict(
        re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)$", (ROOT / LOCK).read_text(), flags=re.M)
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            assert name not in lock
            continue
        assert name in lock, f"{name} is not in {LOCK}: run make lock"
        assert requirement.specifier.contains(lock[name]), f"{name}=={lock[name]} vs {spec}"
    for dockerfile in ("bot", "worker", "migrate"):
        text = (ROOT / "docker" / f"{dockerfile}.Dockerfile").read_text()
        installs = re.findall(r"pip install (.*)", text)
        for line in installs:
            if "TORCH_SPEC" not in line and "--no-deps" not in line:
                assert f"-c {LOCK}" in line, f"{dockerfile}: unpinned install: {line}"
    assert f"-c {LOCK}" in (ROOT / "Makefile").read_text()


def test_bot_image_installs_no_torch_and_worker_image_pins_it() -> None:
    bot = (ROOT / "docker" / "bot.Dockerfile").read_text()
    instructions = [line for line in bot.splitlines() if not line.lstrip().startswith("#")]
    assert "torch" not in "\n".join(instructions)
    assert "pip install --no-deps ." in bot
    assert "COPY s2s_core" not in bot and "COPY worker" not in bot
    worker = (ROOT / "docker" / "worker.Dockerfile").read_text()
    assert "TORCH_INDEX_URL" in worker and "TORCH_SPEC=torch==" in worker
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)
