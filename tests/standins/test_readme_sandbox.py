"""The README's sandbox steps, run as a person would run them: README -> sandbox -> examples
-> `kubectl rtp status`, reaching a Serving policy (issue 32). The shell block is taken from
the README itself, so the steps and this test cannot drift apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import tools
from support.envtest import REPO_ROOT

SECTION = "## Try it with kubectl: the sandbox"
ENV_FILE = Path("/tmp/rtp-sandbox.env")


def readme_steps() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"no ```sh block under {SECTION!r} in README.md"
    return match.group(1)


def test_the_readme_block_is_what_a_person_types() -> None:
    steps = readme_steps()
    for needed in (
        "retraining-standins sandbox --world examples --operator",
        "kubectl apply -f examples/pascal-voc-detector.yaml",
        "kubectl rtp status",
    ):
        assert needed in steps


@pytest.mark.timeout(600)
def test_readme_sandbox_examples_status_reach_serving(envtest_assets: Path) -> None:
    assert envtest_assets.is_dir()  # built (or failed) before: the README's build.sh reuses it
    venv_bin = Path(sys.executable).parent
    kubectl_dir = str(Path(tools.kubectl_path()).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "KUBECONFIG", "KUBEBUILDER"))
    }
    env["PATH"] = os.pathsep.join([str(venv_bin), kubectl_dir, env.get("PATH", "")])
    ENV_FILE.unlink(missing_ok=True)
    script = "set -euo pipefail\n" + readme_steps()
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    finally:
        sandbox_env = ENV_FILE.read_text() if ENV_FILE.exists() else ""
        ENV_FILE.unlink(missing_ok=True)
    output = f"{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}\n{sandbox_env}"
    assert done.returncode == 0, output
    assert "condition met" in done.stdout, output  # kubectl wait: phase Serving
    assert "RetrainingPolicy vision/pascal-detector" in done.stdout, output  # kubectl rtp status
    assert re.search(r"Phase:\s+Serving", done.stdout), output
    assert "# sandbox ready" in sandbox_env
    directory = re.search(r"^# retraining sandbox in (\S+)", sandbox_env, re.MULTILINE)
    assert directory, sandbox_env
    assert not Path(directory.group(1)).exists(), output  # kill %1; wait: all of it removed
