"""The deployment examples in deploy/ are real: every command parses, every setting is read, the stop timeout fits."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from confluent_kafka import Producer

from vvv_core import kafka
from vvv_core.cli import build_parser
from vvv_core.config import Settings
from vvv_core.groups import GROUPS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTALLED = "/opt/viralvidvault/bin/vvv"


def environment(tmp_path: Path) -> dict[str, str]:
    """deploy/env with its files where this checkout has them."""
    env = dict(line.split("=", 1) for line in (DEPLOY / "env").read_text().splitlines() if line and line[0] != "#")
    assert env["VVV_KAFKA_CONFIG"] == "/etc/viralvidvault/client.properties"
    env["VVV_KAFKA_CONFIG"] = str(DEPLOY / "client.properties")
    (tmp_path / "password").write_text("secret\n")
    env["VVV_KAFKA_SASL_PASSWORD_FILE"] = str(tmp_path / "password")
    return env


def test_the_environment_file_is_all_real_settings_that_librdkafka_takes(tmp_path):
    settings = Settings.from_env(environment(tmp_path))  # an unknown VVV_* name would raise
    assert settings.kafka["security.protocol"] == "SASL_SSL" and settings.kafka["sasl.password"] == "secret"
    Producer(kafka.producer_config(settings)).flush(0)  # librdkafka rejects a property it does not know


def test_the_systemd_unit_runs_a_real_command_and_outlasts_the_graceful_stop(tmp_path):
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # keys are case-sensitive
    unit.read(DEPLOY / "vvv-consume@.service")
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0] == INSTALLED
    for group in GROUPS:
        args = build_parser().parse_args([a.replace("%i", group) for a in command[1:]])
        assert args.command == "consume" and args.group == group
    assert service["EnvironmentFile"] == "/etc/viralvidvault/env"
    stop_timeout = Settings.from_env(environment(tmp_path)).stop_timeout
    assert float(service["TimeoutStopSec"]) >= stop_timeout + 5  # the drain, then leaving the group
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"


def test_the_crontab_line_runs_the_hooks_command(tmp_path):
    (line,) = [x for x in (DEPLOY / "crontab").read_text().splitlines() if x and x[0] != "#"]
    fields = line.split(None, 6)
    assert len(fields) == 7 and fields[5] == "vvv"  # five time fields, the user, the command
    command = shlex.split(fields[6].split("&&")[-1].split(">>")[0])
    assert command[0] == INSTALLED
    args = build_parser().parse_args(command[1:])
    assert args.command == "publish" and args.db == "/var/lib/viralvidvault/cron.db"
    assert ". /etc/viralvidvault/env" in fields[6]


def test_the_kubernetes_workers_run_real_commands_without_the_database(tmp_path):
    import yaml

    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "workers.yaml").read_text()))
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    env = dict(config["data"])
    (tmp_path / "password").write_text("secret")
    env["VVV_KAFKA_SASL_PASSWORD_FILE"] = str(tmp_path / "password")  # where the secret is mounted
    settings = Settings.from_env(env)  # every name a real setting, every value in range
    Producer(kafka.producer_config(settings)).flush(0)
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["args"][1] for d in deployments} == {
        "thumbnails",
        "liveness",
    }
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = build_parser().parse_args(container["args"])
        assert args.command == "consume" and args.db is None and not GROUPS[args.group].needs_db
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        port = settings.metrics_port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
        assert pod["terminationGracePeriodSeconds"] >= settings.stop_timeout + 5
        mounted = {m["mountPath"] for m in container["volumeMounts"]}
        assert mounted == {"/run/secrets/kafka"} and config["data"]["VVV_KAFKA_SASL_PASSWORD_FILE"].startswith(
            "/run/secrets/kafka/"
        )  # the secret, and no database
        assert deployment["spec"]["replicas"] <= settings.partitions
