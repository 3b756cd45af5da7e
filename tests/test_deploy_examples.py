"""The deployment examples in deploy/ are real: every command parses, every setting is read, the stop timeout fits,
the set-up script makes what the units and the crontab line need (run in a scratch root)."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from vvv_core import kafka
from vvv_core.cli import build_parser
from vvv_core.config import Settings
from vvv_core.groups import GROUPS

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
INSTALLED_BIN = "/opt/viralvidvault/bin"
INSTALLED = f"{INSTALLED_BIN}/vvv"


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


def unit(name: str) -> configparser.SectionProxy:
    parsed = configparser.ConfigParser(interpolation=None, strict=False)
    parsed.optionxform = str  # keys are case-sensitive
    parsed.read(DEPLOY / name)
    return parsed["Service"]


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    """bin/ of an installed venv as deploy/setup.sh lays it out: vvv-member beside a `vvv` that says what it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vvv").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (bin_dir / "vvv").chmod(0o755)
    shutil.copy(DEPLOY / "vvv-member", bin_dir / "vvv-member")
    return bin_dir


def test_the_systemd_template_runs_several_members_of_a_group_each_with_its_own_metrics_port(tmp_path, installed):
    service = unit("vvv-consume@.service")
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{INSTALLED_BIN}/vvv-member" and command[1] == "%i"
    ports = {}
    for group in ("scoring", "thumbnails", "liveness"):
        for n in (1, 2, 3):
            args = [a.replace("%i", f"{group}-{n}") for a in command]
            done = subprocess.run([str(installed / "vvv-member"), *args[1:]], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            parsed = build_parser().parse_args(done.stdout.splitlines())  # what vvv gets
            assert (parsed.command, parsed.group, parsed.db) == ("consume", group, "/var/lib/viralvidvault/cron.db")
            ports[(group, n)] = parsed.metrics_port
    assert len(set(ports.values())) == len(ports) and ports[("thumbnails", 2)] == 9122  # one port each
    for bad in ("sink-1", "thumbnails", "thumbnails-0", "thumbnails-10"):
        done = subprocess.run([str(installed / "vvv-member"), bad], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith(f"vvv-member: {bad}: expected GROUP-N")
    assert service["EnvironmentFile"] == "/etc/viralvidvault/env" and service["User"] == "vvv"
    stop_timeout = Settings.from_env(environment(tmp_path)).stop_timeout
    for name in ("vvv-consume@.service", "vvv-sink.service"):
        service = unit(name)
        assert float(service["TimeoutStopSec"]) >= stop_timeout + 5  # the drain, then leaving the group
        assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
        assert service["RestartPreventExitStatus"] == "2"  # a bad setting: not again until it is fixed
    sink = shlex.split(unit("vvv-sink.service")["ExecStart"])
    assert sink[0] == f"{INSTALLED_BIN}/vvv" and build_parser().parse_args(sink[1:]).command == "sink"
    assert build_parser().parse_args(sink[1:]).metrics_port not in ports.values()


def test_the_crontab_line_runs_the_hooks_command(tmp_path):
    (line,) = [x for x in (DEPLOY / "crontab").read_text().splitlines() if x and x[0] != "#"]
    fields = line.split(None, 6)
    assert len(fields) == 7 and fields[5] == "vvv"  # five time fields, the user, the command
    command = shlex.split(fields[6].split("&&")[-1].split(">>")[0])
    assert command[0] == INSTALLED
    args = build_parser().parse_args(command[1:])
    assert args.command == "publish" and args.db == "/var/lib/viralvidvault/cron.db"
    assert ". /etc/viralvidvault/env" in fields[6]


def test_the_kubernetes_example_has_what_an_operator_needs_and_runs_real_commands(tmp_path):
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "workers.yaml").read_text()))
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Namespace", "Secret", "Service"]
    (namespace,) = [d["metadata"]["name"] for d in documents if d["kind"] == "Namespace"]
    assert all(d["metadata"]["namespace"] == namespace for d in documents if d["kind"] != "Namespace")
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    (service,) = [d for d in documents if d["kind"] == "Service"]
    env = dict(config["data"])
    (tmp_path / "password").write_text(secret["stringData"]["password"])
    env["VVV_KAFKA_SASL_PASSWORD_FILE"] = str(tmp_path / "password")  # where the secret is mounted
    settings = Settings.from_env(env)  # every name a real setting, every value in range
    Producer(kafka.producer_config(settings)).flush(0)
    deployments = [d for d in documents if d["kind"] == "Deployment"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["args"][1] for d in deployments} == {
        "thumbnails",
        "liveness",
    }
    assert service["spec"]["ports"] == [{"name": "metrics", "port": settings.metrics_port, "targetPort": "metrics"}]
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()  # the metrics Service finds every pod
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pod["enableServiceLinks"] is False  # no <SERVICE>_PORT=tcp://... variables injected
        (container,) = pod["containers"]
        args = build_parser().parse_args(container["args"])
        assert args.command == "consume" and args.db is None and not GROUPS[args.group].needs_db
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        assert container["ports"] == [{"name": "metrics", "containerPort": settings.metrics_port}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert pod["terminationGracePeriodSeconds"] >= settings.stop_timeout + 5
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
        mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert list(mounted) == ["/run/secrets/kafka"] and config["data"]["VVV_KAFKA_SASL_PASSWORD_FILE"].startswith(
            "/run/secrets/kafka/"
        )  # the secret, and no database
        (volume,) = pod["volumes"]
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        assert deployment["spec"]["replicas"] <= settings.partitions


def test_the_setup_script_makes_the_user_the_folders_and_the_venv_in_a_scratch_root(tmp_path):
    """deploy/setup.sh with --root: each step's result, as the units and the crontab line need them; twice."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / name).write_text("")
    (root / "etc" / "passwd").write_text("cron:x:1500:1500::/home/cron:/bin/sh\n")  # the cron's own user
    (root / "etc" / "group").write_text("cron:x:1500:\n")
    data = root / "var/lib/viralvidvault"
    data.mkdir(parents=True)
    (data / "cron.db").write_text("")
    os.chown(data / "cron.db", 1500, 1500)
    (data / "cron.db").chmod(0o644)
    for _ in range(2):  # idempotent
        done = subprocess.run(
            [str(DEPLOY / "setup.sh"), "--root", str(root), "--cron-user", "cron"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    passwd = {line.split(":")[0]: line.split(":") for line in (root / "etc/passwd").read_text().splitlines()}
    groups = {line.split(":")[0]: line.split(":") for line in (root / "etc/group").read_text().splitlines()}
    uid, gid = int(passwd["vvv"][2]), int(groups["vvv"][2])
    assert passwd["vvv"][6] == "/usr/sbin/nologin" and int(passwd["vvv"][3]) == gid
    assert groups["vvv"][3] == "cron"  # the cron's user shares the data directory
    assert list(groups) == ["cron", "vvv"] and list(passwd) == ["cron", "vvv"]  # made once

    def mode(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return st.st_uid, st.st_gid, st.st_mode & 0o7777

    assert mode(data) == (0, gid, 0o2770) and mode(data / "cron.db") == (1500, gid, 0o664)
    assert mode(root / "var/log/viralvidvault") == (uid, gid, 0o750)
    assert mode(root / "etc/viralvidvault") == (0, gid, 0o750)
    for name in ("env", "client.properties"):
        assert mode(root / "etc/viralvidvault" / name) == (0, gid, 0o640)
        assert (root / "etc/viralvidvault" / name).read_text() == (DEPLOY / name).read_text()
    venv = root / "opt/viralvidvault"
    assert (
        subprocess.run([str(venv / "bin/python"), "-c", "import sys; assert sys.prefix != sys.base_prefix"]).returncode
        == 0
    )
    assert (venv / "bin/vvv-member").read_text() == (DEPLOY / "vvv-member").read_text()
    units = root / "etc/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == ["vvv-consume@.service", "vvv-sink.service"]
    assert (root / "etc/cron.d/viralvidvault").read_text() == (DEPLOY / "crontab").read_text()
    # what the units and the crontab line name is what the script made
    for name in ("vvv-consume@.service", "vvv-sink.service"):
        service = unit(name)
        assert service["User"] == "vvv" and (root / service["EnvironmentFile"].lstrip("/")).is_file()
        assert Path(shlex.split(service["ExecStart"])[0]).parent == Path(INSTALLED_BIN)
    line = next(x for x in (DEPLOY / "crontab").read_text().splitlines() if x and x[0] != "#")
    assert ">> /var/log/viralvidvault/publish.log" in line and line.split()[5] == "vvv"
    kept = root / "etc/viralvidvault/env"
    kept.write_text("KAFKA_BOOTSTRAP_SERVERS=mine:9092\n")
    assert subprocess.run([str(DEPLOY / "setup.sh"), "--root", str(root)], capture_output=True).returncode == 0
    assert kept.read_text() == "KAFKA_BOOTSTRAP_SERVERS=mine:9092\n"  # an operator's configuration is kept
