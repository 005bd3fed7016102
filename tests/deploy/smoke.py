"""The deployment smoke run behind ``make deploy-smoke``: the real images and compose file,
started the way docs/operations.md says, against a fake Telegram on this host.

Stages, each timed: build the three images (CPU torch) → redis + postgres healthy → migrate
exits 0 at the Alembic head → the bot, started while Telegram is unreachable, waits without
restarting → bot + CPU worker answer a message and the exchange is stored →
every healthcheck passes → a killed bot container comes back and answers again → SIGTERM
gives the worker a warm shutdown → everything torn down (volumes included), also on failure.

Docker (``docker compose``) or podman with podman-compose (where the registries cannot give
the redis/postgres base images, local stand-ins are swapped in by an override file). Not
part of ``make test``:
a cold run takes about ten minutes. Run it after changing a Dockerfile, the compose file, a
dependency or the start-up of the bot or the worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.utils.fake_telegram import FakeTelegram
from tests.utils.services import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "s2s-smoke"
TAG = "smoke"
PODMAN_COMPOSE = Path("/var/tmp/s2s-containers/venv/bin/podman-compose")  # host-setup.sh
PODMAN_STANDINS = {"redis": "localhost/local/redis:7", "postgres": "localhost/local/postgres:15"}
WORKER = "worker-cpu"


class SmokeFailure(Exception):
    """A check of the run failed; the message says which and what was seen."""


@dataclass
class Engine:
    """The container tool and its compose front end."""

    cli: str  # docker | podman
    compose: list[str]

    @property
    def host_alias(self) -> str:
        """The name containers reach this host by (the fake Telegram listens here)."""
        return "host.docker.internal" if self.cli == "docker" else "host.containers.internal"

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        done = subprocess.run(
            [self.cli, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise SmokeFailure(f"{self.cli} {' '.join(args[:3])}: {done.stderr.strip()[-800:]}")
        return done.stdout.strip()

    def container(self, service: str) -> str:
        names = self.run(
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).split()
        if len(names) != 1:
            raise SmokeFailure(f"expected one {service} container, found {names}")
        return names[0]

    def healthy(self, service: str) -> bool:
        """Runs the image's healthcheck now (podman without systemd never runs it alone)."""
        name = self.container(service)
        if self.cli == "podman":
            return self.run("healthcheck", "run", name, check=False, timeout=60) == ""
        status = self.run("inspect", "-f", "{{.State.Health.Status}}", name, check=False)
        return status == "healthy"

    def logs(self, service: str) -> str:
        done = subprocess.run(
            [self.cli, "logs", self.container(service)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout + done.stderr


def detect_engine() -> Engine:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    ):
        return Engine("docker", ["docker", "compose"])
    compose = shutil.which("podman-compose") or (
        str(PODMAN_COMPOSE) if PODMAN_COMPOSE.exists() else None
    )
    if shutil.which("podman") and compose:
        return Engine("podman", [compose])
    raise SmokeFailure("no container engine: install Docker, or podman with podman-compose")


class Clock:
    """Prints each stage with its duration, and the total at the end."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.stages: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"[{began - self.start:7.1f} s] {name} ...", flush=True)
        yield
        self.stages[name] = round(time.monotonic() - began, 1)
        print(f"[{time.monotonic() - self.start:7.1f} s] {name}: ok ({self.stages[name]} s)")


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise SmokeFailure(f"timed out after {timeout:.0f} s waiting for {what}")


def torch_build_args() -> list[str]:
    """CPU torch for the worker image: the wheel pip finds on this host (find-links), mounted
    into the build, else PyTorch's CPU index."""
    found = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if found and list(Path(found).glob("torch-2.13.0+cpu-*.whl")):
        return [
            "-v",
            f"{found}:/wheels:ro",
            "--build-arg",
            "TORCH_SPEC=torch==2.13.0+cpu --find-links /wheels",
            "--build-arg",
            "TORCH_INDEX_URL=https://pypi.org/simple",
        ]
    return ["--build-arg", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"]


def build_images(engine: Engine) -> None:
    images = {"migrate": [], "bot": [], "worker": torch_build_args()}
    for dockerfile, extra in images.items():
        name = "worker-cpu" if dockerfile == "worker" else dockerfile
        args = ["build", "-q", "-f", f"docker/{dockerfile}.Dockerfile", "-t", f"s2s-{name}:{TAG}"]
        if engine.cli == "podman":
            args.append("--format=docker")  # else podman drops HEALTHCHECK
        engine.run(*args, *extra, str(ROOT), timeout=1800)


def override_file(engine: Engine, folder: Path) -> Path:
    """Compose override: podman's local stand-ins for redis/postgres, and (Docker) the host
    alias the fake Telegram is reached by."""
    services: dict[str, dict[str, object]] = {}
    if engine.cli == "podman":
        services = {name: {"image": image} for name, image in PODMAN_STANDINS.items()}
    else:
        services = {"bot": {"extra_hosts": ["host.docker.internal:host-gateway"]}}
    path = folder / "override.yml"
    path.write_text(json.dumps({"services": services}))  # JSON is YAML
    return path


class Stack:
    """The compose project of this run, with its environment."""

    def __init__(self, engine: Engine, folder: Path, telegram_port: int) -> None:
        self.engine = engine
        retrain = folder / "retrain"
        retrain.mkdir()
        retrain.chmod(0o777)  # the images run as uid 10001
        self.env = {
            **os.environ,
            "S2S_VERSION": TAG,
            "POSTGRES_PASSWORD": "smoke-db-secret",
            "REDIS_PASSWORD": "smoke-redis-secret",
            "TELEGRAM_TOKEN": FakeTelegram.token,
            "TELEGRAM_API_URL": f"http://{engine.host_alias}:{telegram_port}/bot",
            "MODELS_DIR": str(ROOT / "models"),
            "RETRAIN_HOST_DIR": str(retrain),
            "BOT_REPLY_TIMEOUT_S": "120",
        }
        self.files = [
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(override_file(engine, folder)),
        ]

    def compose(self, *args: str, timeout: float = 600) -> str:
        command = [*self.engine.compose, "--profile", "cpu", "-p", PROJECT, *self.files, *args]
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise SmokeFailure(f"compose {' '.join(args)}: {done.stderr.strip()[-1500:]}")
        return done.stdout

    def sql(self, query: str) -> str:
        return self.engine.run(
            "exec",
            self.engine.container("postgres"),
            "psql",
            "-U",
            "s2s",
            "-d",
            "s2s",
            "-tAc",
            query,
        )

    def down(self) -> None:
        with contextlib.suppress(SmokeFailure, subprocess.TimeoutExpired):
            self.compose("down", "-v", "-t", "20", timeout=300)


def alembic_head() -> str:
    from alembic.script import ScriptDirectory

    from worker.store.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def ask(telegram: FakeTelegram | None, user: int, text: str, timeout: float) -> str:
    assert telegram is not None
    message = telegram.user_message(user, user, text)
    try:
        (reply,) = telegram.wait_for(lambda: telegram.replies_to(message), timeout=timeout)
    except TimeoutError as exc:
        raise SmokeFailure(f"no reply to {text!r} in {timeout:.0f} s") from exc
    return reply.text


def smoke(engine: Engine, clock: Clock, folder: Path) -> None:
    port = free_port()
    stack = Stack(engine, folder, port)
    telegram: FakeTelegram | None = None
    try:
        with clock.stage("build images (migrate, bot, CPU worker)"):
            build_images(engine)
        with clock.stage("redis + postgres healthy"):
            stack.compose("up", "-d", "redis", "postgres")
            for service in ("redis", "postgres"):
                wait_until(partial(engine.healthy, service), 120, f"{service} healthy")
        with clock.stage("migrate exits 0 at the Alembic head"):
            stack.compose("up", "-d", "--no-deps", "migrate")
            code = engine.run("wait", engine.container("migrate"), timeout=300)
            if code.strip() != "0":
                raise SmokeFailure(f"migrate exited {code}: {engine.logs('migrate')[-1500:]}")
            revision = stack.sql("select version_num from alembic_version")
            if revision != alembic_head():
                raise SmokeFailure(f"database at {revision!r}, migrations head {alembic_head()!r}")
        with clock.stage("the bot waits while Telegram is unreachable (no restarts)"):
            stack.compose("up", "-d", "--no-deps", "bot", WORKER)
            wait_until(lambda: "(attempt 3:" in engine.logs("bot"), 60, "three start attempts")
            bot = engine.container("bot")
            state = engine.run("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", bot)
            if state != "true 0":
                raise SmokeFailure(f"bot running, restarts: {state}: {engine.logs('bot')[-800:]}")
        with clock.stage("bot + CPU worker answer, the exchange is stored"):
            telegram = FakeTelegram(host="0.0.0.0", port=port).start()  # Telegram is back
            wait_until(lambda: " ready." in engine.logs(WORKER), 300, "the worker ready")
            reply = ask(telegram, 4242, "I just got back from a long hike in the mountains.", 180)
            print(f"           reply: {reply!r}")
            turns = stack.sql("select count(*) from turns")
            generations = stack.sql("select count(*) from generations")
            if int(turns) < 2 or int(generations) < 1:
                raise SmokeFailure(f"stored {turns} turns, {generations} generations")
        with clock.stage("every healthcheck passes"):
            for service in ("redis", "postgres", "bot", WORKER):
                if not engine.healthy(service):
                    raise SmokeFailure(
                        f"{service} healthcheck fails: {engine.logs(service)[-800:]}"
                    )
        with clock.stage("a killed bot container comes back and answers"):
            bot = engine.container("bot")
            started = engine.run("inspect", "-f", "{{.State.StartedAt}}", bot)
            # A crash, not `kill`: the engines count their own kill as a deliberate stop and
            # (rightly) do not restart it. SIGKILL to the bot's process from this host.
            os.kill(int(engine.run("inspect", "-f", "{{.State.Pid}}", bot)), signal.SIGKILL)
            wait_until(
                lambda: (
                    engine.run("inspect", "-f", "{{.State.StartedAt}}", bot) != started
                    and engine.run("inspect", "-f", "{{.State.Running}}", bot) == "true"
                ),
                120,
                "the bot restarted by its restart policy",
            )
            print(f"           reply: {ask(telegram, 4243, 'Do you play any video games?', 180)!r}")
        with clock.stage("SIGTERM: the worker shuts down warm"):
            stack.compose("stop", "-t", "60", WORKER, timeout=120)
            code = engine.run("inspect", "-f", "{{.State.ExitCode}}", engine.container(WORKER))
            logs = engine.logs(WORKER)
            if "Warm shutdown" not in logs or code != "0":
                raise SmokeFailure(f"worker exited {code} without a warm shutdown: {logs[-1500:]}")
    finally:
        with clock.stage("tear down (volumes included)"):
            stack.down()
            if telegram is not None:
                telegram.stop()


def main() -> int:
    clock = Clock()
    try:
        engine = detect_engine()
        print(f"engine: {engine.cli} ({' '.join(engine.compose)})")
        with tempfile.TemporaryDirectory(prefix="s2s-smoke-") as folder:
            smoke(engine, clock, Path(folder))
    except SmokeFailure as exc:
        print(f"deploy smoke FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps({"stages_s": clock.stages, "total_s": round(time.monotonic() - clock.start, 1)})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
