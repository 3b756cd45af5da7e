"""The README keeps up with the code: every setting, command and deliberate break is in it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from vvv_core.cli import build_parser
from vvv_core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    table = README[README.index("## Configuration") : README.index("## Testing")]
    missing = [name for name in Settings.env_names() if f"`{name}`" not in table and name not in table]
    assert not missing, f"not in the README's configuration table: {missing}"


def test_every_command_is_in_the_command_line_section():
    section = README[README.index("## Command line") : README.index("## Configuration")]
    commands = build_parser()._subparsers._group_actions[0].choices
    assert not [c for c in commands if f"vvv {c}" not in section]


def test_every_deliberate_break_is_in_the_testing_section():
    spec = importlib.util.spec_from_file_location("breaks", ROOT / "scripts" / "breaks.py")
    breaks = importlib.util.module_from_spec(spec)
    sys.modules["breaks"] = breaks  # dataclasses look their module up
    spec.loader.exec_module(breaks)
    section = README[README.index("## Testing") :]
    assert not [b.what for b in breaks.BREAKS if f"| {b.what} | `{b.file}` | `{b.test}` |" not in section]
