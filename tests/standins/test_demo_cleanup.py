"""`retraining-standins demo` leaves nothing behind: its working directory (the operator's log,
kube-apiserver and etcd files) is removed when the loop closes and when it is stopped midway,
and kept with `--keep`. Each run gets its own TMPDIR, so what is left there is the demo's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = Path(sys.executable).parent / "retraining-standins"


def demo_env(envtest_assets: Path, tmpdir: Path) -> dict[str, str]:
    tmpdir.mkdir()
    return {**os.environ, "KUBEBUILDER_ASSETS": str(envtest_assets), "TMPDIR": str(tmpdir)}


@pytest.mark.kube
@pytest.mark.slow
def test_the_demo_closes_the_loop_and_removes_its_directory(
    envtest_assets: Path, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    done = subprocess.run(
        [str(CLI), "demo"],
        env=demo_env(envtest_assets, tmpdir),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gate judged like with like" in done.stdout
    assert list(tmpdir.iterdir()) == []


@pytest.mark.kube
def test_sigterm_stops_the_demo_and_removes_its_directory(
    envtest_assets: Path, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    process = subprocess.Popen(
        [str(CLI), "demo"],
        env=demo_env(envtest_assets, tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:  # wait until the operator runs: everything is started
            if "operator started" in line:
                break
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert list(tmpdir.iterdir()) == []


@pytest.mark.kube
def test_keep_keeps_the_logs_and_the_etcd_data(envtest_assets: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    done = subprocess.run(
        [str(CLI), "demo", "--keep", "--loops", "20", "--timeout", "3"],
        env=demo_env(envtest_assets, tmpdir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1  # 3 s is too short to close the loop: the log tail is shown
    (workdir,) = tmpdir.iterdir()
    assert f"kept {workdir}" in done.stdout
    assert (workdir / "operator.log").is_file()
    assert (workdir / "kube" / "etcd-data").is_dir()
