"""Every bad setting is one line naming it, its value and what is allowed: exit 2, before any connection.

The table holds every case found when the project was tried as a careless operator would.
Commands point at a port where no broker listens: had one tried to connect, it would say so
(exit 1) instead of naming the setting (exit 2).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import VVV

from vvv_core import cli, config, kafka
from vvv_core.broker import free_port
from vvv_core.config import ConfigError, Settings, setting

RANGE = "expected a {kind} from {low} to {high}"
NAMESPACE = "expected 1-200 of A-Z a-z 0-9 . _ -, parts joined by dots, each starting and ending with a letter or digit"
TOPIC = "expected a Kafka topic name: 1-249 of A-Z a-z 0-9 . _ -, not . or .., not starting with __"
HOST = "is not a host name or IP address, with a port or not (no scheme or path)"
TOKEN = "expected at least 16 printable characters, not only spaces"
ACKS = 'expected all or -1: "delivered" means acknowledged by the in-sync replicas'
BAD_SETTINGS = [
    ("VVV_BATCH_SIZE", "inf", RANGE.format(kind="whole number", low=1, high=100000)),
    ("VVV_BATCH_SIZE", "nan", RANGE.format(kind="whole number", low=1, high=100000)),
    ("VVV_BATCH_SIZE", "5000000", RANGE.format(kind="whole number", low=1, high=100000)),
    ("VVV_THUMBNAIL_CONCURRENCY", "0", RANGE.format(kind="whole number", low=1, high=1024)),
    ("VVV_THUMBNAIL_CONCURRENCY", "-1", RANGE.format(kind="whole number", low=1, high=1024)),
    ("VVV_LIVENESS_CONCURRENCY", "0", RANGE.format(kind="whole number", low=1, high=1024)),
    ("VVV_LIVENESS_CONCURRENCY", "-1", RANGE.format(kind="whole number", low=1, high=1024)),
    ("VVV_METRICS_PORT", "-1", "expected 0 (off) or a port from 1 to 65535"),
    ("VVV_METRICS_PORT", "70000", "expected 0 (off) or a port from 1 to 65535"),
    ("VVV_MAX_MESSAGE_BYTES", "99999999999", RANGE.format(kind="whole number", low=1024, high=536870912)),
    ("VVV_THUMBNAIL_RETRY_DELAY", "nan", RANGE.format(kind="number", low=0, high=86400)),
    ("VVV_LIVENESS_RETRY_DELAY", "nan", RANGE.format(kind="number", low=0, high=86400)),
    ("VVV_LIVENESS_RATE", "nan", RANGE.format(kind="number", low=0.1, high=6000)),
    ("VVV_LIVENESS_RATE", "inf", RANGE.format(kind="number", low=0.1, high=6000)),
    ("VVV_LIVENESS_RATE", "1e-300", RANGE.format(kind="number", low=0.1, high=6000)),
    ("VVV_LIVENESS_RATE", "1e9", RANGE.format(kind="number", low=0.1, high=6000)),
    ("VVV_HOOK_TIMEOUT", "nan", RANGE.format(kind="number", low=0.05, high=300)),
    ("VVV_HOOK_TIMEOUT", "inf", RANGE.format(kind="number", low=0.05, high=300)),
    ("VVV_DLQ_MAX_RATIO", "nan", RANGE.format(kind="number", low=0.001, high=1)),
    ("VVV_THUMBNAIL_TIMEOUT", "0", RANGE.format(kind="number", low=0.1, high=300)),
    ("VVV_THUMBNAIL_TIMEOUT", "-5", RANGE.format(kind="number", low=0.1, high=300)),
    ("VVV_THUMBNAIL_MAX_BYTES", "0", RANGE.format(kind="whole number", low=1024, high=50000000)),
    ("VVV_THUMBNAIL_MAX_BYTES", "-1", RANGE.format(kind="whole number", low=1024, high=50000000)),
    ("VVV_THUMBNAIL_HOSTS", ",", "expected a comma-separated list of host names or IP addresses, none empty"),
    ("VVV_THUMBNAIL_HOSTS", "https://i.ytimg.com", HOST),
    ("VVV_THUMBNAIL_HOSTS", "i.ytimg.com:0", HOST),
    ("VVV_THUMBNAIL_HOSTS", "thumbs.internal:99999", HOST),
    ("VVV_THUMBNAIL_HOSTS", "i.ytimg.com,[::1", HOST),
    ("VVV_THUMBNAIL_HOSTS", "2130706433:8080", HOST),
    ("VVV_LIVENESS_TIMEOUT", "0", RANGE.format(kind="number", low=0.1, high=300)),
    ("VVV_LIVENESS_TIMEOUT", "-1", RANGE.format(kind="number", low=0.1, high=300)),
    ("VVV_OEMBED_URL", "not-a-url", "expected an http:// or https:// URL with a host"),
    ("VVV_STALE_HOURS", "-1", RANGE.format(kind="number", low=0.01, high=87600)),
    ("VVV_STALE_HOURS", "nan", RANGE.format(kind="number", low=0.01, high=87600)),
    ("VVV_STOP_TIMEOUT", "-1", RANGE.format(kind="number", low=0, high=3600)),
    ("VVV_MAX_IN_FLIGHT", "0", RANGE.format(kind="whole number", low=1, high=1000000)),
    ("VVV_PARTITIONS", "100000", RANGE.format(kind="whole number", low=1, high=1000)),
    ("VVV_PARTITIONS", "many", RANGE.format(kind="whole number", low=1, high=1000)),
    ("VVV_EXACTLY_ONCE", "enabled", "expected one of 1/0, true/false, yes/no, on/off"),
    ("VVV_GROUP_PROTOCOL", "kip848", "expected one of auto, consumer, classic"),
    ("VVV_NAMESPACE", "a b", NAMESPACE),
    ("VVV_NAMESPACE", "..", NAMESPACE),
    ("VVV_NAMESPACE", ".vvv", NAMESPACE),
    ("VVV_NAMESPACE", "a..b", NAMESPACE),
    ("VVV_NAMESPACE", "n" * 201, NAMESPACE),
    ("VVV_TOPIC_STALE", "..", TOPIC),
    ("VVV_TOPIC_STALE", "t" * 250, TOPIC),
    ("VVV_TOPIC_RESULTS", "__consumer_offsets", TOPIC),  # Kafka's own
    ("VVV_TOPIC_RESULTS", "vvv.videos", "the same topic as VVV_TOPIC_VIDEOS (vvv.videos): each must be its own"),
    ("VVV_TOPIC_VIDEOS", "vvv.stale", "the same topic as VVV_TOPIC_STALE (vvv.stale): each must be its own"),
    ("VVV_TOPIC_RESULTS", "vvv_videos", "the same topic as VVV_TOPIC_VIDEOS (vvv.videos)"),  # Kafka: . and _ collide
    ("VVV_TOPIC_RESULTS", "vvv.thumbnails.dlq", "a dead-letter or changelog topic's name (<namespace>.<group>.dlq)"),
    ("VVV_TOPIC_VIDEOS", "vvv.scoring.state", "a dead-letter or changelog topic's name"),
    ("VVV_TOPIC_RESULTS", "vvv.video_state", "the same topic as the table topic (vvv.video_state)"),
    ("VVV_CONSOLE_TOKEN", "x", TOKEN),
    ("VVV_CONSOLE_TOKEN", " " * 20, TOKEN),
    ("VVV_CONSOLE_TOKEN", "sixteen chars\tno", TOKEN),
    ("VVV_OEMBED_URL", "https://www.youtube.com/oembed?format=xml", "without a query or fragment"),
    ("VVV_OEMBED_URL", "https://www.youtube.com/oembed#x", "without a query or fragment"),
    ("VVV_OEMBED_URL", "https://user:pw@www.youtube.com/oembed", "without user@"),
    ("VVV_SCHEMA_REGISTRY_URL", "http://registry:8081/?x=1", "without a query or fragment"),
    ("VVV_KAFKA_ACKS", "0", ACKS),
    ("VVV_KAFKA_ACKS", "1", ACKS),
    ("VVV_KAFKA_REQUEST_REQUIRED_ACKS", "0", ACKS),  # librdkafka's other name for it
    (
        "VVV_KAFKA_BOOTSTRAP_SERVERS",
        "10.0.0.9:9092",
        "the brokers are named again, differently, by KAFKA_BOOTSTRAP_SERVERS=",
    ),
    ("VVV_KAFKA_METADATA_BROKER_LIST", "10.0.0.9:9092", "the brokers are named again, differently, by KAFKA_"),
    ("VVV_BROKER_TIMEOUT", "1", RANGE.format(kind="number", low=5, high=86400)),
    ("KAFKA_BOOTSTRAP_SERVERS", "nohost", "expected HOST:PORT[,HOST:PORT...] with ports from 1 to 65535"),
]


@pytest.fixture
def no_broker(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_and_exit_2(no_broker, monkeypatch, capsys, sample_db, name, value, allowed):
    monkeypatch.setenv(name, value)
    assert cli.main(["consume", "thumbnails", "--db", sample_db]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vvv: error: {name}={value!r}: ") and err.count("\n") == 1
    assert allowed in err


def test_an_unknown_name_is_named_with_the_closest(no_broker, monkeypatch, capsys, sample_db):
    monkeypatch.setenv("VVV_LIVENESS_RATES", "30")
    assert cli.main(["publish", "--db", sample_db]) == 2
    assert capsys.readouterr().err == (
        "vvv: error: VVV_LIVENESS_RATES is not a setting; did you mean VVV_LIVENESS_RATE? "
        "(see the README's configuration table)\n"
    )


def test_half_the_memory_budget_bounds_a_body(monkeypatch):
    with pytest.raises(ValueError, match="VVV_THUMBNAIL_MAX_BYTES=8000000 must be under half of"):
        Settings.from_env({"VVV_THUMBNAIL_MEMORY": "16000000", "VVV_THUMBNAIL_MAX_BYTES": "8000000"})


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["consume", "scoring", "--db", "x.db", "--until-idle", "nan"], "--until-idle: 'nan': expected a number"),
        (["consume", "scoring", "--db", "x.db", "--until-idle", "-1"], "--until-idle: '-1': expected a number"),
        (["consume", "scoring", "--db", "x.db", "--metrics-port", "70000"], "'70000': expected a port"),
        (["broker", "--port", "99999"], "--port: '99999': expected a port from 1 to 65535"),
        (["timeline", "J78aPJ3VyNs", "--days", "367"], "--days: '367': expected at most 366 days"),
        *(
            (["consume", "thumbnails", "--processes", n], f"--processes: '{n}': expected a whole number from 1 to 64")
            for n in ("0", "-1", "abc", "65", "2.5")
        ),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(capsys, args, says):
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    assert exit_.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("where", "args"),
    [("flag", ["-X", "nosuch.property=1"]), ("environment", []), ("properties file", ["--kafka-config", "FILE"])],
)
def test_an_unknown_librdkafka_property_is_one_line_naming_where_settings_come_from(
    no_broker, monkeypatch, capsys, tmp_path, where, args
):
    if where == "environment":
        monkeypatch.setenv("VVV_KAFKA_NOSUCH_PROPERTY", "1")
    file = tmp_path / "client.properties"
    file.write_text("# as every Kafka tool writes it\nnosuch.property = 1\n")
    assert cli.main(["status", *[str(file) if a == "FILE" else a for a in args]]) == 2
    err = capsys.readouterr().err
    assert err.startswith('vvv: error: No such configuration property: "nosuch.property" (librdkafka settings: ')
    assert err.count("\n") == 1


def test_what_an_orchestrator_injects_never_reaches_the_client(no_broker, monkeypatch, capsys, sample_db):
    """A Kubernetes Service named kafka injects KAFKA_PORT, KAFKA_SERVICE_HOST ...; other tools set KAFKA_HOME."""
    for name, value in {
        "KAFKA_PORT": "tcp://10.0.0.1:9092",
        "KAFKA_PORT_9092_TCP": "tcp://10.0.0.1:9092",
        "KAFKA_SERVICE_HOST": "10.0.0.1",
        "KAFKA_SERVICE_PORT": "9092",
        "KAFKA_HOME": "/opt/kafka",
    }.items():
        monkeypatch.setenv(name, value)
    assert Settings.from_env().kafka == {}
    assert cli.main(["status"]) == 1  # no broker at the address: that, and not a setting, is the error
    assert "no Kafka broker reachable" in capsys.readouterr().err


def test_librdkafka_settings_from_a_properties_file_the_environment_secret_files_and_flags(tmp_path, monkeypatch):
    """Later wins: the file, then VVV_KAFKA_* (a *_FILE one read from its file), then -X."""
    file = tmp_path / "client.properties"
    file.write_text(
        "security.protocol=SASL_SSL\n! Java comments too\nsasl.mechanism: PLAIN\n"
        "sasl.username = from-file\nssl.ca.location=/etc/ssl/a\\\n  b.pem\n"
    )
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    env = {
        "VVV_KAFKA_CONFIG": str(file),
        "VVV_KAFKA_SASL_USERNAME": "from-env",
        "VVV_KAFKA_SASL_PASSWORD_FILE": str(secret),
    }
    assert Settings.from_env(env).kafka == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "from-env",
        "ssl.ca.location": "/etc/ssl/ab.pem",
        "sasl.password": "s3cret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser().parse_args(["-X", "sasl.username=from-flag", "status"])
    for name, default in cli.GLOBAL_DEFAULTS.items():
        args.__dict__.setdefault(name, default)
    assert cli._settings(args).kafka["sasl.username"] == "from-flag"


def bad_file(kind: str, folder: Path) -> str:
    """A file a setting may name that cannot be read as one: what it is, by ``kind``."""
    path = folder / kind.replace(" ", "-")
    if kind == "a FIFO":
        os.mkfifo(path)  # opening it to read blocks until a writer comes: it must not be opened
    elif kind == "a folder":
        path.mkdir()
    elif kind == "a device":
        return "/dev/zero"  # never ends
    elif kind != "missing":
        contents = {"not UTF-8": b"\xff\xfepassword", "too large": b"x" * (1024 * 1024 + 1), "with a NUL": b"pa\0ss"}
        path.write_bytes(contents[kind])
    return str(path)


SECRET = "VVV_KAFKA_SASL_PASSWORD_FILE"
NOT_REGULAR = "not a regular file (a FIFO, device or folder is not read)"


@pytest.mark.parametrize(
    ("name", "kind", "says"),
    [
        (SECRET, "missing", "{path}: cannot read it: No such file or directory"),
        (SECRET, "not UTF-8", "{path}: the secret is not UTF-8 text"),
        (SECRET, "a FIFO", "{path}: " + NOT_REGULAR),
        (SECRET, "a folder", "{path}: " + NOT_REGULAR),
        (SECRET, "a device", "{path}: " + NOT_REGULAR),
        (SECRET, "too large", "{path}: larger than 65,536 bytes"),
        (SECRET, "with a NUL", "{path}: contains a NUL character"),  # and never its value
        ("VVV_KAFKA_CONFIG", "missing", " / --kafka-config {path}: cannot read it: No such file or directory"),
        ("VVV_KAFKA_CONFIG", "not UTF-8", " / --kafka-config {path}: not a properties file"),
        ("VVV_KAFKA_CONFIG", "a FIFO", " / --kafka-config {path}: " + NOT_REGULAR),
        ("VVV_KAFKA_CONFIG", "too large", " / --kafka-config {path}: larger than 1,048,576 bytes"),
    ],
)
def test_files_that_settings_name_are_read_in_bounded_time_or_refused_in_one_line(tmp_path, name, kind, says):
    """Issue 21, case 4: a non-UTF-8 secret was a 20-line traceback, a FIFO blocked for ever."""
    path = bad_file(kind, tmp_path)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", name: path}
    started = time.monotonic()
    done = subprocess.run([*VVV, "topics"], env=env, capture_output=True, text=True, timeout=20)
    assert time.monotonic() - started < 10  # a FIFO is never opened: nothing waits for a writer
    expected = f"vvv: error: {name}{'=' if name == SECRET else ''}{says.format(path=path)}"
    assert done.returncode == 2 and done.stderr.startswith(expected) and done.stderr.count("\n") == 1
    assert "pa\0ss" not in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_go_before_or_after_the_command(no_broker, capsys, where):
    flags = ["-v", "--bootstrap", "127.0.0.1:1"]
    assert cli.main([*flags, "status"] if where == "before" else ["status", *flags]) == 1
    assert "no Kafka broker reachable at 127.0.0.1:1" in capsys.readouterr().err


def test_help_describes_every_command_and_flag_with_its_default():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    consume = commands["consume"].format_help()
    assert "VVV_STOP_TIMEOUT [10]" in consume and "VVV_KAFKA_<NAME>[_FILE]" in consume  # the epilog
    assert "(default: 9092)" in commands["broker"].format_help()


def test_ports_in_use_are_one_line(settings, capsys, monkeypatch, sample_db):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        assert cli.main(["broker", "--port", port]) == 1
        assert f"port {port} is already in use" in capsys.readouterr().err
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap)
        monkeypatch.setenv("VVV_NAMESPACE", settings.namespace)
        assert cli.main(["consume", "scoring", "--db", sample_db, "--metrics-port", port]) == 1
        assert f"cannot serve metrics on port {port}" in capsys.readouterr().err


def test_sample_into_a_missing_folder_or_onto_a_folder(tmp_path, capsys):
    assert cli.main(["sample", "--db", str(tmp_path / "no" / "x.db")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert cli.main(["sample", "--db", str(tmp_path)]) == 1
    assert "it is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["status"], ["dlq", "list", "scoring"]])
def test_missing_topics_are_one_line(settings, monkeypatch, capsys, command):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap)
    monkeypatch.setenv("VVV_NAMESPACE", settings.namespace)  # fresh: none of its topics exist
    assert cli.main(command) == 1
    err = capsys.readouterr().err
    assert err.startswith("vvv: error: topic t") and "does not exist" in err and "vvv topics" in err
    # and asking for it created nothing (topic auto-creation is off, on the broker and in every client)
    topics = kafka.admin(settings).list_topics(timeout=10).topics
    assert not [t for t in topics if t.startswith(settings.namespace)]


def test_report_without_topics_still_writes_the_page(settings, monkeypatch, capsys, sample_db, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", settings.bootstrap)
    monkeypatch.setenv("VVV_NAMESPACE", settings.namespace)
    assert cli.main(["report", "--db", sample_db, "--out", str(tmp_path / "r.html")]) == 0
    assert "does not exist" in (tmp_path / "r.html").read_text()


def test_a_file_that_is_not_the_cron_database_is_never_written(no_broker, tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    assert cli.main(["consume", "thumbnails", "--db", str(empty)]) == 1
    assert "table videos is missing: is this the cron pipeline's database?" in capsys.readouterr().err
    assert empty.stat().st_size == 0
    conn = sqlite3.connect(empty)
    assert conn.execute("SELECT count(*) FROM sqlite_schema").fetchone() == (0,)


@pytest.mark.parametrize(
    ("env", "args", "says"),
    [
        (
            {"VVV_KAFKA_BOOTSTRAP_SERVERS": "10.0.0.9:9092"},
            [],
            "VVV_KAFKA_BOOTSTRAP_SERVERS='10.0.0.9:9092': the brokers are named again, differently, by "
            "KAFKA_BOOTSTRAP_SERVERS='{bootstrap}': set one of them",
        ),
        (
            {},
            ["-X", "bootstrap.servers=10.0.0.9:9092"],
            "-X bootstrap.servers='10.0.0.9:9092': the brokers are named again, differently, by "
            "KAFKA_BOOTSTRAP_SERVERS='{bootstrap}': set one of them",
        ),
        (
            {},
            ["--bootstrap", "10.0.0.8:9092", "-X", "metadata.broker.list=10.0.0.9:9092"],
            "-X metadata.broker.list='10.0.0.9:9092': the brokers are named again, differently, by "
            "--bootstrap='10.0.0.8:9092': set one of them",
        ),
        (
            {"VVV_KAFKA_SASL_PASSWORD": "a", "VVV_KAFKA_SASL_PASSWORD_FILE": "SECRET"},
            [],
            "VVV_KAFKA_SASL_PASSWORD_FILE=SECRET and VVV_KAFKA_SASL_PASSWORD both set sasl.password: set it once",
        ),
        (
            {"VVV_KAFKA_ACKS": "all", "VVV_KAFKA_REQUEST_REQUIRED_ACKS": "all"},
            [],
            "VVV_KAFKA_REQUEST_REQUIRED_ACKS and VVV_KAFKA_ACKS both set acks: set it once",
        ),
        ({}, ["-X", "acks=all", "-X", "acks=1"], "-X acks is given twice: give it once"),
        ({}, ["-X", "acks=0"], "-X acks='0': expected all or -1"),
    ],
)
def test_one_librdkafka_setting_given_twice_is_one_line_naming_both(
    no_broker, monkeypatch, tmp_path, capsys, env, args, says
):
    """Issue 21, case 6: VVV_KAFKA_BOOTSTRAP_SERVERS silently replaced KAFKA_BOOTSTRAP_SERVERS, which errors named."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("SECRET", str(secret)))
    assert cli.main(["status", *args]) == 2
    err = capsys.readouterr().err
    says = says.format(bootstrap=os.environ["KAFKA_BOOTSTRAP_SERVERS"]).replace("SECRET", str(secret))
    assert err.startswith(f"vvv: error: {says}") and err.count("\n") == 1


def test_the_brokers_named_once_anywhere_are_the_address_used_and_named(monkeypatch, capsys):
    """VVV_KAFKA_BOOTSTRAP_SERVERS alone is the address: the client uses it and every error names it."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("VVV_KAFKA_BOOTSTRAP_SERVERS", address)
    settings = Settings.from_env()
    assert settings.bootstrap == address and "bootstrap.servers" not in settings.kafka
    assert cli.main(["status"]) == 1 and f"no Kafka broker reachable at {address}" in capsys.readouterr().err
    assert Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": address, "VVV_KAFKA_BOOTSTRAP_SERVERS": address}).bootstrap


# Two Services, as Kubernetes injects them into every pod started after them: vvv-thumbnails and vvv-kafka.
SERVICE_LINKS = {
    "VVV_THUMBNAILS_PORT": "tcp://10.0.0.7:9100",
    "VVV_THUMBNAILS_PORT_9100_TCP": "tcp://10.0.0.7:9100",
    "VVV_THUMBNAILS_PORT_9100_TCP_ADDR": "10.0.0.7",
    "VVV_THUMBNAILS_PORT_9100_TCP_PORT": "9100",
    "VVV_THUMBNAILS_PORT_9100_TCP_PROTO": "tcp",
    "VVV_THUMBNAILS_SERVICE_HOST": "10.0.0.7",
    "VVV_THUMBNAILS_SERVICE_PORT": "9100",
    "VVV_THUMBNAILS_SERVICE_PORT_METRICS": "9100",
    "VVV_KAFKA_PORT": "tcp://10.0.0.8:9092",
    "VVV_KAFKA_PORT_9092_TCP": "tcp://10.0.0.8:9092",
    "VVV_KAFKA_PORT_9092_TCP_ADDR": "10.0.0.8",
    "VVV_KAFKA_PORT_9092_TCP_PORT": "9092",
    "VVV_KAFKA_PORT_9092_TCP_PROTO": "tcp",
    "VVV_KAFKA_SERVICE_HOST": "10.0.0.8",
    "VVV_KAFKA_SERVICE_PORT": "9092",
    "VVV_METRICS_PORT": "tcp://10.0.0.9:9400",  # a Service named vvv-metrics: the real setting's name, a link's value
    "VVV_PORT": "tcp://10.0.0.10:80",  # a Service named vvv
    "VVV_SERVICE_HOST": "10.0.0.10",
}


def test_kubernetes_service_links_are_never_settings(caplog):
    """Issue 21, case 5: VVV_THUMBNAILS_PORT was 'not a setting' (exit 2), VVV_KAFKA_SERVICE_HOST went to librdkafka."""
    with caplog.at_level(logging.DEBUG, logger="vvv_core.config"):
        settings = Settings.from_env(SERVICE_LINKS)
    assert settings == Settings() and settings.kafka == {}
    ignored = {r.getMessage() for r in caplog.records}
    assert ignored == {f"ignoring {name}: a Kubernetes service link, not a setting" for name in SERVICE_LINKS}
    assert Settings.from_env({**SERVICE_LINKS, "VVV_METRICS_PORT": "9400"}).metrics_port == 9400  # set, not a link


@pytest.mark.parametrize("kind", ["a FIFO", "not UTF-8"])
def test_a_schema_folder_that_cannot_be_used_is_one_line(tmp_path, kind):
    """VVV_SCHEMA_DIR naming a FIFO, or a folder with a file that is no schema, was a traceback."""
    folder = bad_file(kind, tmp_path) if kind == "a FIFO" else tmp_path
    if kind == "not UTF-8":
        (tmp_path / "broken.avsc").write_bytes(b"\xff{")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "VVV_SCHEMA_DIR": str(folder)}
    done = subprocess.run([*VVV, "consume", "thumbnails"], env=env, capture_output=True, text=True, timeout=30)
    says = f"vvv: error: the Avro schemas in {folder} (VVV_SCHEMA_DIR) cannot be used: "
    assert done.returncode == 2 and done.stderr.startswith(says) and done.stderr.count("\n") == 1


def from_env(**env: str) -> Settings:
    return Settings.from_env(env)


def refusal(**env: str) -> str:
    """The one line ``Settings.from_env(env)`` refuses it with."""
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    return str(refused.value)


def edges(f: dataclasses.Field) -> tuple[list[str], list[str]]:
    """A numeric setting's range edges as an operator writes them: (taken, refused)."""
    low, high = f.metadata["low"], f.metadata["high"]
    if f.type == "int":
        return [str(low), str(high), f"{high}.0"], [str(low - 1), str(high + 1), f"{low}.5"]
    return [repr(float(low)), repr(float(high))], [
        repr(math.nextafter(low, -math.inf)),
        repr(math.nextafter(high, math.inf)),
    ]


RANGED = [f for f in dataclasses.fields(Settings) if f.metadata.get("low") is not None]


@pytest.mark.parametrize("f", RANGED, ids=[f.name for f in RANGED])
def test_every_numeric_setting_takes_its_whole_range_and_nothing_beyond(f):
    """Each edge of each range exactly: taken as written, and a step beyond it refused in the one line."""
    name = f"VVV_{f.name.upper()}"
    room = {} if f.name == "thumbnail_memory" else {"VVV_THUMBNAIL_MEMORY": "4000000000"}  # max bytes under half
    taken, refused = edges(f)
    for raw in taken:
        assert getattr(from_env(**room, **{name: raw}), f.name) == float(raw)
    kind = "a whole number" if f.type == "int" else "a number"
    low, high = (config._number(f.metadata[k]) for k in ("low", "high"))
    for raw in refused:
        assert refusal(**room, **{name: raw}) == f"{name}={raw!r}: expected {kind} from {low} to {high}"


def test_settings_are_parsed_as_operators_write_them():
    for raw, value in {
        " Yes ": True,
        "ON": True,
        "1": True,
        "true": True,
        "no": False,
        "Off": False,
        "0": False,
        "FALSE ": False,
    }.items():
        assert from_env(VVV_EXACTLY_ONCE=raw).exactly_once is value
    assert from_env(VVV_BATCH_SIZE="1e3").batch_size == 1000 and isinstance(
        from_env(VVV_BATCH_SIZE="7").batch_size, int
    )
    assert refusal(VVV_METRICS_PORT="x") == "VVV_METRICS_PORT='x': expected a whole number"  # no range to say
    assert refusal(VVV_METRICS_PORT="1.5") == "VVV_METRICS_PORT='1.5': expected a whole number"
    for port in (0, 1, 65535):
        assert from_env(VVV_METRICS_PORT=str(port)).metrics_port == port
    assert refusal(VVV_METRICS_PORT="65536") == "VVV_METRICS_PORT='65536': expected 0 (off) or a port from 1 to 65535"
    hosts = from_env(VVV_THUMBNAIL_HOSTS=" I.YTIMG.COM , thumbs.test:8443,[::1]:9000,i.ytimg.com:8080")
    assert hosts.thumbnail_hosts == ("i.ytimg.com", "thumbs.test:8443", "[::1]:9000", "i.ytimg.com:8080")
    assert hosts.thumbnail_host_names == ("i.ytimg.com", "thumbs.test", "::1")  # what a browser may load from
    assert from_env(VVV_TOPIC_VIDEOS="").videos_topic == "vvv.videos"  # empty is unset


def test_half_the_memory_budget_bounds_a_body_to_the_byte():
    assert from_env(VVV_THUMBNAIL_MEMORY="16000000", VVV_THUMBNAIL_MAX_BYTES="7999999").thumbnail_max_bytes == 7999999
    assert refusal(VVV_THUMBNAIL_MEMORY="16000001", VVV_THUMBNAIL_MAX_BYTES="8000000") == (
        "VVV_THUMBNAIL_MAX_BYTES=8000000 must be under half of VVV_THUMBNAIL_MEMORY=16000001: half holds bodies, "
        "half decodes them"
    )


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("i.ytimg.com", ("i.ytimg.com", None)),
        ("thumbs.test:1", ("thumbs.test", 1)),
        ("thumbs.test:65535", ("thumbs.test", 65535)),
        ("10.0.0.7:8080", ("10.0.0.7", 8080)),
        ("[::1]", ("::1", None)),
        ("[::1]:9000", ("::1", 9000)),
        ("::1", ("::1", None)),  # bare IPv6: more than one colon, no port
        ("a" * 63 + ".test", ("a" * 63 + ".test", None)),
        ("[::1]9000", ValueError),
        ("[::1]:", ValueError),
        ("[::1]:x", ValueError),
        ("[127.0.0.1]", ValueError),
        ("[::1", ValueError),
        ("thumbs.test:0", ValueError),
        ("thumbs.test:65536", ValueError),
        ("thumbs.test:", ValueError),
        ("thumbs.test:+80", ValueError),
        ("2130706433", ValueError),  # a number, not a name
        ("a" * 64 + ".test", ValueError),
        ("-thumbs.test", ValueError),
        ("thumbs_test", ValueError),
        ("", ValueError),
    ],
)
def test_an_allow_list_entry_is_a_host_or_address_with_a_port_or_not(entry, parsed):
    if parsed is ValueError:
        with pytest.raises(ValueError):
            config.host_and_port(entry)
        assert refusal(VVV_THUMBNAIL_HOSTS=f"i.ytimg.com,{entry}").startswith("VVV_THUMBNAIL_HOSTS=")
    else:
        assert config.host_and_port(entry) == parsed


@pytest.mark.parametrize(
    ("name", "value", "taken"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "h:1,h2:65535, [::1]:9092", True),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:0", False),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:0,h:1", False),  # each server its own port
        ("KAFKA_BOOTSTRAP_SERVERS", "h:65536", False),
        ("KAFKA_BOOTSTRAP_SERVERS", ":9092", False),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:9092,", False),
        ("KAFKA_BOOTSTRAP_SERVERS", "h:x", False),
        ("VVV_CONSOLE_TOKEN", "s" * 16, True),
        ("VVV_CONSOLE_TOKEN", "s" * 15, False),
        ("VVV_TOPIC_RESULTS", "r" * 249, True),
        ("VVV_TOPIC_RESULTS", "_results", True),
        ("VVV_TOPIC_RESULTS", "...", True),
        ("VVV_TOPIC_RESULTS", ".", False),
        ("VVV_NAMESPACE", "a", True),
        ("VVV_NAMESPACE", "a_-b.c-d", True),
        ("VVV_NAMESPACE", "n" * 200, True),
        ("VVV_NAMESPACE", "a-", False),
        ("VVV_NAMESPACE", "a.", False),
        ("VVV_OEMBED_URL", "http://127.0.0.1:8080/oembed", True),
        ("VVV_OEMBED_URL", "ftp://h/oembed", False),
        ("VVV_OEMBED_URL", "http:///oembed", False),
        ("VVV_SCHEMA_REGISTRY_URL", "https://user:pw@registry:8081", True),  # the registry's own credentials
        ("VVV_STATE_DIR", "/var/lib/vvv", True),
        ("VVV_GROUP_PROTOCOL", "classic", True),
        ("VVV_KAFKA_ACKS", " ALL ", True),
        ("VVV_KAFKA_ACKS", "-1", True),
        ("VVV_KAFKA_LINGER_MS", "5\0", False),
    ],
)
def test_a_setting_at_its_rules_edge(name, value, taken):
    if taken:
        Settings.from_env({name: value})
    else:
        assert refusal(**{name: value}).startswith(f"{name}={value!r}: ")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"VVV_OEMBED_URL": "http://h:99999/x"}, "VVV_OEMBED_URL='http://h:99999/x': not a URL (Port out of range"),
        (
            {"VVV_OEMBED_URL": "ftp://h/x"},
            "VVV_OEMBED_URL='ftp://h/x': expected an http:// or https:// URL with a host",
        ),
        ({"VVV_STATE_DIR": ""}, None),  # empty is unset: the default
        ({"VVV_NAMESPACE": "a\nb"}, "VVV_NAMESPACE='a\\nb': expected 1-200 of"),
        ({"VVV_FOO\nBAR": "1"}, "VVV_FOO\\nBAR is not a setting (see the README's configuration table)"),
        ({"VVV_ZZZZZZZZZZZZ": "1"}, "VVV_ZZZZZZZZZZZZ is not a setting (see the README's configuration table)"),
        (
            {"VVV_KAFKA_SASL__USERNAME": "u"},
            "VVV_KAFKA_SASL__USERNAME is not a setting: VVV_KAFKA_<NAME> is librdkafka",
        ),
        ({"VVV_KAFKA_ACKS": "1"}, "VVV_KAFKA_ACKS='1': expected all or -1"),
        (
            {"KAFKA_BOOTSTRAP_SERVERS": "h"},
            "KAFKA_BOOTSTRAP_SERVERS='h': expected HOST:PORT[,HOST:PORT...] with ports from 1 to 65535",
        ),
        (
            {"VVV_THUMBNAIL_HOSTS": ","},
            "VVV_THUMBNAIL_HOSTS=',': expected a comma-separated list of host names or IP addresses, none empty",
        ),
        (
            {"VVV_OEMBED_URL": "https://h.test/o?x=1"},
            "VVV_OEMBED_URL='https://h.test/o?x=1': expected an http:// or https:// URL without a query or fragment "
            "(the request adds its own)",
        ),
        (
            {"VVV_OEMBED_URL": "https://u@h.test/o"},
            "VVV_OEMBED_URL='https://u@h.test/o': expected an http:// or https:// URL without user@ (the request "
            "refuses userinfo)",
        ),
        (
            {"VVV_TOPIC_STALE": ".."},
            "VVV_TOPIC_STALE='..': expected a Kafka topic name: 1-249 of A-Z a-z 0-9 . _ -, not . or .., not starting "
            "with __",
        ),
        (
            {"VVV_CONSOLE_TOKEN": "x"},
            "VVV_CONSOLE_TOKEN='x': expected at least 16 printable characters, not only spaces (or unset: a new one "
            "each start)",
        ),
        (
            {"VVV_KAFKA_*": "x"},
            "VVV_KAFKA_* is not a setting: VVV_KAFKA_<NAME> is librdkafka's name",
        ),  # no one variable
        ({"VVV_KAFKA_LINGER_MS": "5\0"}, "VVV_KAFKA_LINGER_MS='5\\x00': contains a NUL character"),
        ({"VVV_TOPIC_VIDEOS": "vvv.videos", "VVV_TOPIC_STALE": "vvv.stale"}, None),  # each its own default
        ({"VVV_NAMESPACE": "a.b", "VVV_TOPIC_STALE": "a_b.x.dlq"}, "VVV_TOPIC_STALE='a_b.x.dlq': a dead-letter or"),
        ({"VVV_TOPIC_STALE": "vvv.x_state"}, "VVV_TOPIC_STALE='vvv.x_state': a dead-letter or changelog topic's"),
        ({"VVV_TOPIC_STALE": "other.x.dlq"}, None),  # another namespace's
        ({"VVV_TOPIC_STALE": "vvv.dlq.x"}, None),
        (
            {"VVV_TOPIC_STALE": "vvv_results"},
            "VVV_TOPIC_STALE='vvv_results': the same topic as VVV_TOPIC_RESULTS (vvv.results): each must be its own",
        ),
        ({"VVV_SCHEMA_DIR": "/x", "VVV_METRICS_PORT": "9400"}, None),  # read elsewhere, but a real name
    ],
)
def test_what_a_setting_is_refused_for_is_said_in_one_line(env, says):
    if says is None:
        Settings.from_env(env)
    else:
        message = refusal(**env)
        assert message.startswith(says) and message.isprintable()


def test_the_names_made_from_the_namespace():
    s = from_env(VVV_NAMESPACE="ns.a", VVV_TOPIC_RESULTS="res", VVV_MAX_MESSAGE_BYTES="1024")
    assert [s.topic(t) for t in ("videos", "stale", "results")] == ["ns.a.videos", "ns.a.stale", "res"]
    assert (s.group_id("sink"), s.dead_letter_topic("sink"), s.changelog_topic("scoring")) == (
        "ns.a.sink",
        "ns.a.sink.dlq",
        "ns.a.scoring.state",
    )
    assert (s.table_topic, s.dead_letter_bytes) == ("ns.a.video_state", 1024 + 64 * 1024)
    assert s.replace(partitions=3).partitions == 3
    with pytest.raises(ConfigError, match="VVV_PARTITIONS=0: expected a whole number from 1 to 1000"):
        s.replace(partitions=0)
    with pytest.raises(ConfigError, match="VVV_HOOK_TIMEOUT=True: expected a number from"):
        s.replace(hook_timeout=True)
    assert Settings().kafka == {} and Settings().kafka is not Settings().kafka  # a fresh one each


def test_a_commands_help_lists_the_settings_it_reads_with_their_defaults():
    assert config.environment_help(["hook"]) == (
        "environment it reads (default in brackets; the README's configuration table has them all):\n"
        "  VVV_HOOK_TIMEOUT [2]\n  VVV_STALE_HOURS [48]"
    )
    assert config.environment_help([]) == (
        "environment: none of the settings (the README's configuration table lists them)"
    )
    console = config.environment_help(["console"]).splitlines()[1:]
    assert console == ["  VVV_CONSOLE_TOKEN [none]", "  VVV_THUMBNAIL_HOSTS [i.ytimg.com,... (7 hosts)]"]
    member = config.environment_help(["member", "schemas"])
    assert "  VVV_EXACTLY_ONCE [off]\n" in member and "  VVV_DLQ_MAX_RATIO [0.5]\n" in member
    assert "  VVV_SCHEMA_REGISTRY_URL [none]\n" in member and member.endswith(
        "  VVV_SCHEMA_DIR [the package's schemas]"
    )
    everything = config.environment_help().splitlines()
    assert "  VVV_KAFKA_<NAME>[_FILE]  a librdkafka setting (e.g. VVV_KAFKA_SECURITY_PROTOCOL=SASL_SSL)" in everything
    assert "  KAFKA_BOOTSTRAP_SERVERS [127.0.0.1:9092]" in everything
    assert len(everything) == 1 + len(dataclasses.fields(Settings)) + 1  # each setting once, and VVV_SCHEMA_DIR


def test_librdkafka_settings_given_twice_in_one_source_or_differently_for_the_brokers(tmp_path):
    file = tmp_path / "client.properties"
    file.write_text("acks=all\nrequest.required.acks=-1\n")
    assert refusal(VVV_KAFKA_CONFIG=str(file)) == (
        f"{file} (request.required.acks) and {file} (acks) both set acks: set it once"
    )
    file.write_text("acks=1\n")  # a file's values may be secrets: never shown
    assert refusal(VVV_KAFKA_CONFIG=str(file)) == (
        f'{file} (acks): expected all or -1: "delivered" means acknowledged by the in-sync replicas, for every '
        "producer here"
    )
    file.write_text("bootstrap.servers=h:1\n")
    assert from_env(VVV_KAFKA_CONFIG=str(file)).bootstrap == "h:1"  # named once: the file's
    assert Settings.from_env({"VVV_KAFKA_CONFIG": str(file)}, bootstrap="h:1").bootstrap == "h:1"
    assert Settings.from_env({}, bootstrap="h:2").bootstrap == "h:2"
    with pytest.raises(ConfigError, match="names the brokers again: use bootstrap"):
        Settings(kafka={"metadata.broker.list": "h:9"})
    assert Settings(bootstrap="h:9", kafka={"bootstrap.servers": "h:9"}).bootstrap == "h:9"
    for key in ("acks", "request.required.acks"):  # by either of librdkafka's names
        with pytest.raises(ConfigError, match=rf"{key}='0' \(a librdkafka setting\): expected all or -1"):
            Settings(kafka={key: "0"})
    with pytest.raises(ConfigError, match="names the brokers again: use bootstrap"):
        Settings(kafka={"bootstrap.servers": "h:9"})


def test_a_secret_file_is_read_to_the_byte_and_its_line_end_dropped(tmp_path):
    secret = tmp_path / "pw"
    secret.write_bytes(b"s" * (64 * 1024 - 2) + b"\r\n")  # exactly the limit
    assert from_env(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)).kafka == {"sasl.password": "s" * (64 * 1024 - 2)}
    secret.write_bytes(b"s" * (64 * 1024 + 1))
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={secret}: larger than 65,536 bytes"
    )
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(tmp_path)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={tmp_path}: not a regular file (a FIFO, device or folder is not read)"
    )


@pytest.mark.parametrize(
    ("name", "value", "link"),
    [
        ("VVV_THUMBNAILS_PORT", "udp://10.0.0.7:53", True),
        ("VVV_THUMBNAILS_PORT", "sctp://10.0.0.7:9", True),
        ("VVV_METRICS_PORT", "9400", False),
        ("VVV_METRICS_PORT", "tcp://", False),
        ("VVV_X_PORT_53_UDP_PROTO", "udp", True),
        ("VVV_X_SERVICE_PORT_HTTP_2", "80", True),
        ("VVV_X_PORT_53_ICMP", "x", False),
    ],
)
def test_a_kubernetes_service_link_is_told_by_its_name_and_value(name, value, link):
    assert config.service_link(name, value) is link
    assert (name in config.without_service_links({name: value})) is not link


def test_a_setting_declares_its_name_range_and_check_next_to_its_default():
    """Declared at run time here (a class body runs once, at import): a mapping is a fresh one each and out of the
    hash, a name defaults to VVV_<FIELD>, a range and a check are what a value is held to."""

    @dataclasses.dataclass(frozen=True)
    class Declared:
        n: int = setting(5, 1, 10, env="TINY_N")
        mode: str = setting("a", check=config._one_of(("a", "b")))
        extra: Mapping[str, str] = setting({}, env="TINY_EXTRA")
        least: int = setting(2, 1)

    n, mode, extra, least = dataclasses.fields(Declared)
    assert (Declared().n, Declared().mode, Declared().extra) == (5, "a", {})
    assert Declared().extra is not Declared().extra and hash(Declared()) == hash(Declared(extra={"x": "y"}))
    assert (config._env_name(n), config._env_name(mode), config._env_name(extra)) == (
        "TINY_N",
        "VVV_MODE",
        "TINY_EXTRA",
    )
    for f, value, says in [
        (n, 11, "TINY_N=11: expected a whole number from 1 to 10"),
        (n, 0, "TINY_N=0: expected a whole number from 1 to 10"),
        (mode, "c", "VVV_MODE='c': expected one of a, b"),
        (least, 0, "VVV_LEAST=0: expected a whole number of at least 1"),  # a range open above
    ]:
        with pytest.raises(ConfigError) as refused:
            config._validate(f, value)
        assert str(refused.value) == says
    config._validate(mode, "b")


def test_files_settings_name_are_read_only_so_far_and_refused_in_one_line(tmp_path, monkeypatch):
    secret, properties = tmp_path / "pw", tmp_path / "client.properties"
    secret.write_bytes(b"s3cret X \r\n")
    assert from_env(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)).kafka == {"sasl.password": "s3cret X "}  # its line end
    secret.write_bytes(b"s3cretX\n")
    assert from_env(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)).kafka == {"sasl.password": "s3cretX"}
    secret.write_bytes(b"pa\0ss")
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={secret}: contains a NUL character"  # and never the secret itself
    )
    properties.write_text("sasl.username=pä\n", encoding="utf-8")
    assert from_env(VVV_KAFKA_CONFIG=str(properties)).kafka == {"sasl.username": "pä"}
    for name, path, says in [
        ("VVV_KAFKA_SASL_PASSWORD_FILE", tmp_path / "none", "cannot read it: No such file or directory"),
        ("VVV_KAFKA_CONFIG", tmp_path / "none", "cannot read it: No such file or directory"),
    ]:
        shown = f"{name}={path}" if name != "VVV_KAFKA_CONFIG" else f"VVV_KAFKA_CONFIG / --kafka-config {path}"
        assert refusal(**{name: str(path)}) == f"{shown}: {says}"
    secret.write_bytes(b"\xff\xfepassword")
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={secret}: the secret is not UTF-8 text"
    )
    properties.write_bytes(b"\xff\xfe=x")
    assert refusal(VVV_KAFKA_CONFIG=str(properties)).startswith(
        f"VVV_KAFKA_CONFIG / --kafka-config {properties}: not a properties file: "
    )
    with open(secret, "wb") as huge:
        huge.truncate(2**40)  # a terabyte, sparse: read whole, it would not fit in memory
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(secret)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={secret}: larger than 65,536 bytes"
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # a FIFO swapped in after the check: its open must not wait for a writer, nor it be read
    stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stat(__file__) if str(p) == str(fifo) else stat(p, *a, **k))
    assert refusal(VVV_KAFKA_SASL_PASSWORD_FILE=str(fifo)) == (
        f"VVV_KAFKA_SASL_PASSWORD_FILE={fifo}: not a regular file (a FIFO, device or folder is not read)"
    )


def test_a_default_is_shown_in_help_as_an_operator_would_write_it():
    shown = [config._shown(v) for v in (True, False, 0.5, 2.0, 300, ("a.test", "b.test"), "", "vvv")]
    assert shown == ["on", "off", "0.5", "2", "300", "a.test,... (2 hosts)", "none", "vvv"]
