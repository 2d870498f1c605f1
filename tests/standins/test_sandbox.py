"""`retraining-standins sandbox` as a user runs it: a subprocess whose printed kubeconfig a real
kubectl uses to apply an example, which the operator the sandbox runs takes to Serving; then
SIGTERM, or SIGINT to a process started in the background, stops every child process and
removes the directory. Also `python -m retraining_standins.kubeapi`, and the examples' world
on its own."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from retraining_standins.examples_world import read_examples, seed_examples
from retraining_standins.sandbox import READY
from retraining_standins.stack import AwsStandins
from support import tools
from support.envtest import REPO_ROOT

CLI = Path(sys.executable).parent / "retraining-standins"
EXAMPLES = REPO_ROOT / "examples"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Running:
    """A command whose stdout is read line by line in the background."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, prefix: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        self.process.kill()
        _, err = self.process.communicate(timeout=10)
        pytest.fail(f"no {prefix!r} line; stdout:\n" + "\n".join(self.seen) + f"\nstderr:\n{err}")

    def rest(self, timeout: float = 10.0) -> list[str]:
        """The lines after the process ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            self.seen.append(line)
        return self.seen

    @property
    def exports(self) -> dict[str, str]:
        return dict(
            line.removeprefix("export ").split("=", 1)
            for line in self.seen
            if line.startswith("export ")
        )


@pytest.fixture
def sandbox_env(envtest_assets: Path) -> dict[str, str]:
    return {**os.environ, "KUBEBUILDER_ASSETS": str(envtest_assets)}


@pytest.fixture
def started() -> Iterator[list[Running]]:
    runs: list[Running] = []
    yield runs
    for run in runs:  # a failed test must not leave a sandbox running
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(10)


def start(
    started: list[Running], argv: list[str], env: dict[str, str], *, background: bool = False
) -> Running:
    def as_background_job() -> None:
        # What a non-interactive shell does to `cmd &`: SIGINT ignored before exec.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_background_job if background else None,
    )
    run = Running(process)
    started.append(run)
    return run


def stop(run: Running, sig: int, children: set[int], directory: Path | None) -> list[str]:
    """Send `sig`; assert exit 0, every child gone, the directory removed; the output."""
    run.process.send_signal(sig)
    assert run.process.wait(60) == 0, run.process.stderr.read() if run.process.stderr else ""
    lines = run.rest()
    assert [pid for pid in children if alive(pid)] == []
    if directory is not None:
        assert not directory.exists()
    return lines


def kubectl(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [tools.kubectl_path(), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.kube
@pytest.mark.slow
def test_an_example_reaches_serving_in_the_sandbox_and_sigterm_cleans_up(
    sandbox_env: dict[str, str], started: list[Running]
) -> None:
    run = start(started, [str(CLI), "sandbox", "--world", "examples", "--operator"], sandbox_env)
    run.until(READY)
    exports = run.exports
    kubeconfig = Path(exports["KUBECONFIG"])
    directory = kubeconfig.parent.parent
    assert kubeconfig.is_file()
    assert (directory / "env.sh").is_file()
    assert any("kubectl apply -f examples/pascal-voc-detector.yaml" in line for line in run.seen)
    children = descendants(run.process.pid)
    names = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in children}
    assert {Path(n.decode()).name for n in names} >= {
        "kube-apiserver",
        "etcd",
        Path(sys.executable).name,
    }
    shell = {**os.environ, **exports}

    kubectl(shell, "apply", "-f", "examples/pascal-voc-detector.yaml")
    deadline, phase = time.monotonic() + 180, ""
    while time.monotonic() < deadline and phase != "Serving":
        time.sleep(1)
        phase = kubectl(
            shell, "get", "rtp", "-n", "vision", "pascal-detector", "-o=jsonpath={.status.phase}"
        )
    log = (directory / "operator.log").read_text()
    assert phase == "Serving", log[-3000:]
    assert "Serving: run" in log

    lines = stop(run, signal.SIGTERM, children, directory)
    assert lines[-1].startswith("# sandbox stopped")
    assert "removed" in lines[-1]


@pytest.mark.kube
def test_sigint_stops_a_sandbox_started_in_the_background(
    sandbox_env: dict[str, str], started: list[Running]
) -> None:
    run = start(started, [str(CLI), "sandbox", "--operator"], sandbox_env, background=True)
    run.until(READY)
    directory = Path(run.exports["KUBECONFIG"]).parent.parent
    assert (directory / "demo-policy.yaml").is_file()
    assert run.exports["DEMO_FLOW_DEFINITION_ARN"].endswith("flow-definition/fd-demo")
    children = descendants(run.process.pid)
    assert len(children) >= 3  # etcd, kube-apiserver, the operator
    stop(run, signal.SIGINT, children, directory)


@pytest.mark.kube
def test_keep_leaves_the_directory_with_logs_and_etcd_data(
    sandbox_env: dict[str, str], started: list[Running], tmp_path: Path
) -> None:
    directory = tmp_path / "sandbox"
    run = start(started, [str(CLI), "sandbox", "--keep", "--dir", str(directory)], sandbox_env)
    run.until(READY)
    assert Path(run.exports["KUBECONFIG"]) == directory / "kube" / "kubeconfig"
    children = descendants(run.process.pid)
    lines = stop(run, signal.SIGTERM, children, None)
    assert (directory / "kube" / "etcd-data").is_dir()
    assert (directory / "kube" / "kube-apiserver.log").is_file()
    assert lines[-1].endswith(f"kept {directory}")


@pytest.mark.kube
def test_the_bare_control_plane_module_stops_on_sigterm(
    sandbox_env: dict[str, str], started: list[Running]
) -> None:
    argv = [sys.executable, "-m", "retraining_standins.kubeapi"]
    run = start(started, argv, sandbox_env, background=True)
    kubeconfig = Path(run.until("export KUBECONFIG=").split("=", 1)[1])
    children = descendants(run.process.pid)
    assert len(children) == 2  # etcd, kube-apiserver
    stop(run, signal.SIGTERM, children, kubeconfig.parent)


def test_the_examples_world_holds_what_the_examples_name() -> None:
    examples, refused = read_examples(EXAMPLES)
    assert refused == []
    with AwsStandins(account_id="111122223333") as aws:
        world = seed_examples(aws, examples, refused)
        seeded = {example.path.name for example in world.seeded}
        assert "pascal-voc-detector.yaml" in seeded
        assert {path.name for path, _ in world.skipped} == {
            "spot-canary-tuning.yaml",
            "train-only.yaml",
        }
        pascal = next(e for e in world.seeded if e.path.name == "pascal-voc-detector.yaml")
        name = pascal.spec.human_loops.flow_definition_arn.rsplit("/", 1)[-1]
        flow = aws.sagemaker.call("DescribeFlowDefinition", FlowDefinitionName=name)
        assert flow["FlowDefinitionArn"] == pascal.spec.human_loops.flow_definition_arn
        assert flow["OutputConfig"]["S3OutputPath"] == pascal.spec.dataset.output_s3_uri
        assert world.flows[name] >= pascal.spec.dataset.min_new_samples
        endpoint = aws.sagemaker.describe_endpoint("od-endpoint")
        assert endpoint["EndpointStatus"] == "InService"
        assert aws.get_object(pascal.spec.dataset.validation.manifest_s3_uri or "")
        alarms = aws.admin_client("cloudwatch").describe_alarms(AlarmNames=["od-endpoint-5xx"])
        assert [a["StateValue"] for a in alarms["MetricAlarms"]] == ["OK"]
        assert world.namespaces == ["vision"]


@pytest.mark.kube
def test_a_directory_of_the_users_keeps_its_own_files(
    sandbox_env: dict[str, str], started: list[Running], tmp_path: Path
) -> None:
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine\n")
    run = start(started, [str(CLI), "sandbox", "--dir", str(directory)], sandbox_env)
    run.until(READY)
    assert (directory / "demo-policy.yaml").is_file()
    stop(run, signal.SIGTERM, descendants(run.process.pid), None)
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
