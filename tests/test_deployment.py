"""docker-compose.yml and the Dockerfile, checked without Docker (none runs on these machines)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from vvv_core import kafka
from vvv_core.cli import build_parser
from vvv_core.config import KAFKA_PREFIX, OTHER_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROJECT_SERVICES = {name: s for name, s in SERVICES.items() if "build" in s}


def copied_into_image() -> list[str]:
    """Every source of every COPY line of the Dockerfile."""
    lines = re.findall(r"^COPY (.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    return [source for line in lines for source in line.split()[:-1]]


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


@pytest.mark.parametrize("name", ["scoring", "thumbnails", "liveness", "sink"])
def test_each_group_is_a_scalable_restarting_service(name):
    service = SERVICES[name]
    assert service["command"][:2] == (["sink", "--db"] if name == "sink" else ["consume", name])
    assert service["restart"] == "on-failure" and service["stop_signal"] == "SIGTERM"
    assert "container_name" not in service and "ports" not in service  # --scale needs neither
    # Only what must read or write the cron database gets it; the workers can run on any host.
    assert service.get("volumes", []) == (["cron-db:/data"] if name in ("scoring", "sink") else [])
    port = service["environment"]["VVV_METRICS_PORT"]
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(PROJECT_SERVICES))
def test_every_service_command_is_a_real_cli_command(name):
    args = build_parser().parse_args(PROJECT_SERVICES[name]["command"])
    assert callable(args.func)


def test_environment_names_are_the_configurations():
    known = set(Settings.env_names()) | OTHER_NAMES
    for name, service in PROJECT_SERVICES.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        for variable in env:
            assert variable in known or variable.startswith(KAFKA_PREFIX), f"{name}: {variable} is read by nothing"
        settings = Settings.from_env(env)
        # every VVV_KAFKA_* passes through to librdkafka, which rejects a setting it does not know
        Consumer(kafka.consumer_config(settings, name)).close()
        Producer(kafka.producer_config(settings)).flush(0)


def test_dockerfile_entry_point_is_the_cli():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["vvv"]' in dockerfile and "VVV_SCHEMA_DIR" not in dockerfile
    for copied in copied_into_image():
        assert (ROOT / copied).exists(), f"Dockerfile copies {copied}, which does not exist"


def test_the_installed_package_runs_as_the_image_runs_it(tmp_path):
    """A plain (non-editable) install, as the image has it, run from another folder with no VVV_* paths."""
    source, target = tmp_path / "src", tmp_path / "site"
    source.mkdir()
    for copied in copied_into_image():  # exactly what the image gets
        (shutil.copytree if (ROOT / copied).is_dir() else shutil.copy)(ROOT / copied, source / copied)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("VVV_")} | {"PYTHONPATH": str(target)}

    def installed(code: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    where = installed("import vvv_core; print(vvv_core.__file__)")
    assert where.stdout.startswith(str(target))  # the installed copy, not this checkout
    done = installed("from vvv_core.cli import main; import sys; sys.exit(main(sys.argv[1:]))", "--help")
    assert done.returncode == 0 and "consume" in done.stdout
    schemas = installed(
        "from vvv_core.avro import DEFAULT_SCHEMA_DIR, SchemaStore; SchemaStore(); print(DEFAULT_SCHEMA_DIR)"
    )
    assert schemas.returncode == 0, schemas.stderr
    assert schemas.stdout.startswith(str(target))  # the installed package's own schemas
