"""docker-compose.yml and the Dockerfile, checked without Docker (no engine runs on these machines): the file
parsed and interpolated as compose does, every command and setting resolved against the CLI and the
configuration, the ports, the scaling line, the image's user against the paths it writes (its start script run
as that uid on real folders), and the install the Dockerfile does, run in a venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from vvv_core import kafka
from vvv_core.cli import build_parser
from vvv_core.config import KAFKA_PREFIX, OTHER_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
CRON_DIR = "/var/lib/viralvidvault"
VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error} (an error when unset)."""

    def value(m: re.Match) -> str:
        name, kind, rest = m[1], m[2], m[3]
        if env.get(name):
            return env[name]
        if kind == ":?":
            raise ValueError(f"{name}: {rest}")
        return rest if kind == ":-" else ""

    return VARIABLE.sub(value, text)


COMPOSE = yaml.safe_load(interpolate(TEXT, {"VIRALVIDVAULT_CRON_DIR": CRON_DIR}))
SERVICES = COMPOSE["services"]
PROJECT_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s}
IMAGE_UID, IMAGE_GID = (int(n) for n in re.search(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M).groups())


def copied_into_image() -> list[str]:
    """Every source of every COPY line of the Dockerfile."""
    lines = re.findall(r"^COPY (.+)$", DOCKERFILE, re.M)
    return [source for line in lines for source in line.split()[:-1]]


def test_compose_needs_the_cron_data_directory_and_its_variables_never_reach_the_containers():
    with pytest.raises(ValueError, match="VIRALVIDVAULT_CRON_DIR: set VIRALVIDVAULT_CRON_DIR to the cron's data"):
        interpolate(TEXT, {})
    names = {m[1] for m in VARIABLE.finditer(TEXT)}
    assert names == {
        "VIRALVIDVAULT_CRON_DIR",
        "VIRALVIDVAULT_CRON_GID",
        "VIRALVIDVAULT_BIND",
        "VIRALVIDVAULT_CONSOLE_TOKEN",
    }
    for service in PROJECT_SERVICES.values():  # compose reads them; a VVV_* name no setting reads stops vvv
        assert not any(name.startswith("VIRALVIDVAULT_") for name in service["environment"])


def test_compose_has_kafka_in_kraft_mode_with_a_healthcheck():
    kafka_service = SERVICES["kafka"]
    assert "healthcheck" in kafka_service
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_runs_the_apache_kafka_the_tests_run_on_with_the_same_settings():
    """One version (kafka/pom.xml) and one properties file (kafka/broker.properties) for both."""
    kafka_service = SERVICES["kafka"]
    pinned = re.search(r"<kafka.version>(.+)</kafka.version>", (ROOT / "kafka/pom.xml").read_text())[1]
    assert kafka_service["image"] == f"apache/kafka:{pinned}"
    assert "./kafka/broker.properties:/mnt/shared/config/server.properties:ro" in kafka_service["volumes"]
    shared = {
        line.split("=", 1)[0]
        for line in (ROOT / "kafka/broker.properties").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {"process.roles", "auto.create.topics.enable"} <= shared
    env = {name[len("KAFKA_") :].lower().replace("_", ".") for name in kafka_service["environment"]}
    assert not env & shared, "set in two places, which drift"


def test_every_published_port_is_on_loopback_unless_the_operator_asks():
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}
    assert set(published) == {"kafka", "console"}
    for ports in published.values():
        assert all(port.startswith("127.0.0.1:") for port in ports), ports
    everywhere = yaml.safe_load(
        interpolate(TEXT, {"VIRALVIDVAULT_CRON_DIR": CRON_DIR, "VIRALVIDVAULT_BIND": "0.0.0.0"})
    )
    assert everywhere["services"]["kafka"]["ports"] == ["0.0.0.0:29092:29092"]
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "HOST://127.0.0.1:29092" in advertised  # what the host's cron connects to


@pytest.mark.parametrize("name", ["scoring", "thumbnails", "liveness", "sink"])
def test_each_group_is_a_scalable_restarting_service(name):
    service = SERVICES[name]
    assert service["command"][:2] == (["sink", "--db"] if name == "sink" else ["consume", name])
    assert service["restart"] == "on-failure" and service["stop_signal"] == "SIGTERM"
    assert "container_name" not in service and "ports" not in service  # --scale needs neither
    # Only what must read or write the cron database gets it; the workers can run on any host.
    cron_dir = {"type": "bind", "source": CRON_DIR, "target": "/data"}
    assert service.get("volumes", []) == ([cron_dir] if name in ("scoring", "sink") else [])
    port = service["environment"]["VVV_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_the_console_is_a_service_on_the_cron_database():
    console = SERVICES["console"]
    args = build_parser().parse_args(console["command"])
    assert args.command == "console" and args.db == "/data/cron.db" and args.host == "0.0.0.0"
    assert console["ports"] == [f"127.0.0.1:{args.port}:{args.port}"]
    assert console["volumes"] == [{"type": "bind", "source": CRON_DIR, "target": "/data"}]
    assert console["environment"]["VVV_CONSOLE_TOKEN"] == ""  # unset: a new token each start, in its log


def test_the_scaling_line_is_true_and_the_same_in_the_file_and_the_readme():
    header = set(re.findall(r"docker compose up -d --scale (\w+)=(\d+)", TEXT))
    readme = set(re.findall(r"docker compose up -d --scale (\w+)=(\d+)", README))
    assert header == readme and len(header) == 1
    ((service, count),) = header
    scaled = SERVICES[service]
    assert "ports" not in scaled and "container_name" not in scaled and "volumes" not in scaled
    assert int(count) <= Settings.from_env(_env(scaled)).partitions  # each member gets partitions


@pytest.mark.parametrize("name", sorted(PROJECT_SERVICES))
def test_every_service_command_is_a_real_cli_command(name):
    args = build_parser().parse_args(PROJECT_SERVICES[name]["command"])
    assert callable(args.func)


def _env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def test_environment_names_are_the_configurations():
    known = set(Settings.env_names()) | OTHER_NAMES
    for name, service in PROJECT_SERVICES.items():
        env = _env(service)
        for variable in env:
            assert variable in known or variable.startswith(KAFKA_PREFIX), f"{name}: {variable} is read by nothing"
        settings = Settings.from_env(env)
        # every VVV_KAFKA_* passes through to librdkafka, which rejects a setting it does not know
        Consumer(kafka.consumer_config(settings, name)).close()
        Producer(kafka.producer_config(settings)).flush(0)


def test_the_image_runs_as_the_user_compose_gives_the_data_directory_to():
    assert re.search(rf"groupadd --gid {IMAGE_GID} vvv && useradd --uid {IMAGE_UID} --gid {IMAGE_GID}", DOCKERFILE)
    assert (
        'ENTRYPOINT ["vvv-start"]' in DOCKERFILE
        and "COPY deploy/docker/start.sh /usr/local/bin/vvv-start" in DOCKERFILE
    )
    for name in ("scoring", "sink", "console"):
        assert SERVICES[name]["group_add"] == [str(IMAGE_GID)]  # the default: the image's own group
    for copied in copied_into_image():
        assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which does not exist"
    assert "VVV_SCHEMA_DIR" not in DOCKERFILE
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {"kafka/lib", "registry/lib", ".venv", "*.db"} <= set(ignored)  # the build context stays small


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the image's uid can reach (pytest's own are root's alone), with a stand-in `vvv` on its PATH."""
    root = Path(tempfile.mkdtemp(prefix="vvv-image-"))
    root.chmod(0o755)
    (root / "bin").mkdir()
    (root / "bin" / "vvv").write_text('#!/bin/sh\necho "vvv ran: $*"\n')
    (root / "bin" / "vvv").chmod(0o755)
    shutil.copy(ROOT / "deploy/docker/start.sh", root / "bin" / "vvv-start")
    (root / "bin").chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def as_image_user(scratch: Path, *args: str, groups: str = str(IMAGE_GID)) -> subprocess.CompletedProcess[str]:
    """The image's entry point, as its uid and groups (compose's group_add)."""
    return subprocess.run(
        ["setpriv", f"--reuid={IMAGE_UID}", f"--regid={IMAGE_GID}", f"--groups={groups}", "vvv-start", *args],
        env={"PATH": f"{scratch / 'bin'}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_entry_point_says_in_one_line_what_the_image_user_cannot_do_with_the_cron_database(scratch):
    cron_dir = scratch / "data"
    cron_dir.mkdir()
    cron_dir.chmod(0o777)  # anyone's: only the database is missing
    db = str(cron_dir / "cron.db")
    command = ["consume", "scoring", "--db", db]

    missing = as_image_user(scratch, *command)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == (
        f"vvv: error: {db} does not exist (uid {IMAGE_UID}, gid {IMAGE_GID}, groups {IMAGE_GID}): mount the cron's "
        f"data directory, the folder holding cron.db, at {cron_dir} (VIRALVIDVAULT_CRON_DIR)\n"
    )
    (cron_dir / "cron.db").write_bytes(b"")  # root's, 644, in root's 755 folder: what a fresh bind mount has
    (cron_dir / "cron.db").chmod(0o644)
    cron_dir.chmod(0o755)
    refused = as_image_user(scratch, *command)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert f"uid {IMAGE_UID}, gid {IMAGE_GID}" in refused.stderr and "cannot read and write it" in refused.stderr
    assert "chmod 2770 DIR; chmod 660 DIR/cron.db" in refused.stderr

    os.chown(cron_dir, 0, IMAGE_GID)  # as the README says: the group, setgid folder, group-writable file
    os.chown(cron_dir / "cron.db", 0, IMAGE_GID)
    cron_dir.chmod(0o2770)
    (cron_dir / "cron.db").chmod(0o660)
    allowed = as_image_user(scratch, *command)
    assert allowed.returncode == 0 and allowed.stdout == f"vvv ran: {' '.join(command)}\n", allowed.stderr
    for path in (cron_dir, cron_dir / "cron.db"):  # the host's own group (its gid in VIRALVIDVAULT_CRON_GID)
        os.chown(path, 0, 4242)
    cron_dir.chmod(0o2770)
    not_given = as_image_user(scratch, *command)
    assert not_given.returncode == 1 and "cannot read and write it" in not_given.stderr
    given = as_image_user(scratch, *command, groups="4242")  # compose's group_add
    assert given.returncode == 0 and given.stdout.startswith("vvv ran: consume scoring"), given.stderr
    assert as_image_user(scratch, "topics").stdout == "vvv ran: topics\n"  # no --db: nothing to check


@pytest.mark.apache_kafka_only  # installed from the package index once per CI run
@pytest.mark.timeout(600)
@pytest.mark.timeout(600)  # a fresh venv's install, building the compiled codec: more than the suite's 120 s
def test_the_dockerfiles_install_runs_in_a_venv_as_in_the_image(tmp_path):
    """The Dockerfile's own pip line, in a fresh venv, on exactly what it copies; then its entry point and the
    installed package's schemas, from another folder with no VVV_* paths."""
    source, venv = tmp_path / "app", tmp_path / "venv"
    source.mkdir()
    for copied in copied_into_image():
        if copied.startswith("deploy/"):
            continue  # the entry point, checked below where the image puts it
        (shutil.copytree if (ROOT / copied).is_dir() else shutil.copy)(ROOT / copied, source / copied)
    (install,) = re.findall(r"^RUN (pip install [^\\\n]+)", DOCKERFILE, re.M)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VVV_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    done = subprocess.run(["bash", "-c", install], cwd=source, env=env, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr
    shutil.copy(ROOT / "deploy/docker/start.sh", venv / "bin" / "vvv-start")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    helped = subprocess.run(["vvv-start", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "consume" in helped.stdout, helped.stderr
    schemas = subprocess.run(
        [
            "python",
            "-c",
            "from vvv_core.avro import DEFAULT_SCHEMA_DIR, SchemaStore; SchemaStore(); print(DEFAULT_SCHEMA_DIR)",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert schemas.returncode == 0 and schemas.stdout.startswith(str(venv)), schemas.stderr
    for module in ("PIL", "prometheus_client", "starlette", "uvicorn"):  # the extras its services need
        assert subprocess.run(["python", "-c", f"import {module}"], env=env, timeout=60).returncode == 0
