"""Each command's --help lists the settings that command reads, and no others: proved by recording which
settings a command reads while it runs, against the variables its help names."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys

import pytest
from conftest import cli_env

from vvv_core.broker import free_port
from vvv_core.cli import build_parser, main
from vvv_core.config import PARTS, Settings

FIELDS = {f.name for f in dataclasses.fields(Settings)}
BY_ENV = Settings.env_names() | {"VVV_KAFKA_<NAME>[_FILE]": "kafka"}


def subcommand(*path: str):
    parser = build_parser()
    for name in path:
        parser = parser._subparsers._group_actions[0].choices[name]
    return parser


def listed(*path: str) -> set[str]:
    """The settings (field names) a command's --help names."""
    names = re.findall(r"^  (\S+)", subcommand(*path).epilog, re.MULTILINE)
    return {BY_ENV[n] for n in names if n != "VVV_SCHEMA_DIR"}


def test_every_setting_is_read_by_some_part_and_each_command_lists_its_own():
    assert {name for names in PARTS.values() for name in names} == FIELDS
    assert listed("sample") == set() and "VVV_" not in subcommand("sample").epilog
    assert listed("dlq", "list") == set(PARTS["kafka"])
    publish = listed("publish")
    assert {"hook_timeout", "stale_hours", "schema_registry_url", "partitions"} <= publish
    assert not {n for n in publish if n.startswith(("thumbnail_", "liveness_"))} | ({"metrics_port"} & publish)
    assert listed("consume") == FIELDS - set(PARTS["hook"]) - {"console_token"}
    assert "VVV_THUMBNAIL_TIMEOUT" not in subcommand("sink").epilog
    assert listed("demo") == FIELDS


@contextlib.contextmanager
def settings_read(monkeypatch: pytest.MonkeyPatch):
    """The settings (field names) read while the block runs, but for their validation, copying and loading."""
    read: set[str] = set()
    plain = object.__getattribute__

    def validating() -> bool:  # a few frames up: validation reads derived names too (the topics, checked apart)
        frame = sys._getframe(2)
        for _ in range(4):
            if frame is None:
                return False
            if frame.f_code.co_name in ("__post_init__", "from_env"):
                return True
            frame = frame.f_back
        return False

    def recording(self, name: str):
        caller = sys._getframe(1).f_code
        if name in FIELDS and not caller.co_filename.endswith(("dataclasses.py", "<string>")) and not validating():
            read.add(name)
        return plain(self, name)

    monkeypatch.setattr(Settings, "__getattribute__", recording)
    yield read
    monkeypatch.undo()


@pytest.mark.parametrize(
    "command",
    [
        ["topics"],
        ["publish", "--db", "{db}"],
        ["outbox", "flush", "--db", "{db}"],
        ["consume", "scoring", "--db", "{db}", "--until-idle", "1"],
        ["consume", "thumbnails", "--until-idle", "1"],
        ["consume", "liveness", "--until-idle", "1"],
        ["sink", "--db", "{db}", "--until-idle", "1"],
        ["status", "--db", "{db}"],
        ["dlq", "list", "scoring"],
        ["report", "--db", "{db}", "--out", "{out}"],
        ["replay", "scoring", "--from-beginning"],
        ["sample", "--db", "{new}"],
    ],
    ids=lambda c: " ".join(a for a in c if not a.startswith("{")),
)
def test_a_command_reads_no_setting_its_help_does_not_list(command, settings, sample_db, tmp_path, monkeypatch):
    nowhere = f"http://127.0.0.1:{free_port()}/oembed"  # checks answered at once: one attempt, no network
    quick = {"VVV_OEMBED_URL": nowhere, "VVV_LIVENESS_RATE": "6000", "VVV_LIVENESS_ATTEMPTS": "1"}
    for name, value in cli_env(settings, VVV_THUMBNAIL_ATTEMPTS="1", **quick).items():
        monkeypatch.setenv(name, value)
    if command[0] != "sample":  # the topics there, with events: a member reads what its work needs
        assert main(["topics"]) == 0 and main(["publish", "--db", sample_db]) == 0
    args = [a.format(db=sample_db, out=tmp_path / "r.html", new=tmp_path / "new.db") for a in command]
    with settings_read(monkeypatch) as read:
        assert main(args) == 0
    help_path = args[:2] if args[0] in ("dlq", "outbox") else args[:1]
    assert bool(read) == (command[0] != "sample"), "the recording missed what the command read"
    assert read <= listed(*help_path), (
        f"read but not in `vvv {' '.join(help_path)} --help`: {read - listed(*help_path)}"
    )
