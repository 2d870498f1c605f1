"""`retraining-standins sandbox`: a kube-apiserver and AWS stand-ins to try the operator against.

Starts, in one directory: a real kube-apiserver + etcd (`kubeapi.ControlPlane`), the AWS
stand-ins on a fast clock, seeded with a world (the demo's: a bucket, an A2I flow definition
with reviewed loops, an endpoint serving a model; or the one the files under `examples/` name),
the CRD, and the namespaces the policies use; with `--operator`, the real operator as a child
process. It prints what a shell needs (`export KUBECONFIG=...` and the AWS endpoint lines;
everything else is a `#` comment, so the output can be sourced) and the next commands, then
waits for SIGINT or SIGTERM, stops every child (operator, kube-apiserver, etcd) and removes the
directory unless `--keep`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

import yaml

from retraining_operator.api import API_GROUP, PLURAL
from retraining_standins.clock import Clock
from retraining_standins.cluster import (
    BackgroundStart,
    OperatorChild,
    create_namespace,
    operator_argv,
)
from retraining_standins.demo import seed_demo
from retraining_standins.demo_run import NAMESPACE as DEMO_NAMESPACE
from retraining_standins.demo_run import demo_policy
from retraining_standins.examples_world import (
    Example,
    ExamplesWorld,
    emulated_account,
    read_examples,
    seed_examples,
)
from retraining_standins.kubeapi import ControlPlane, find_assets
from retraining_standins.stack import AwsStandins, isolated_aws_env
from retraining_standins.state import DEFAULT_ACCOUNT_ID, DEFAULT_REGION

World = Literal["demo", "examples"]
READY = "# sandbox ready"
POLICY_FILE = "demo-policy.yaml"
FIRST_EXAMPLE = "pascal-voc-detector.yaml"


@dataclass(frozen=True)
class SandboxOptions:
    world: World = "demo"
    examples: Path = Path("examples")
    operator: bool = False
    keep: bool = False
    directory: Path | None = None
    assets: Path | None = None
    loops: int = 24
    speed: float = 60.0
    seed: int = 0


@dataclass
class Seeded:
    """What the world put in the stand-ins, for the printout."""

    namespaces: list[str]
    exports: dict[str, str]
    summary: list[str]
    next_commands: list[str]


class Sandbox:
    def __init__(self, options: SandboxOptions, out: TextIO = sys.stdout) -> None:
        self.options = options
        self.out = out
        self.operator: OperatorChild | None = None
        self.operator_exit: int | None = None

    def run(self, stop: threading.Event) -> int:
        """Start everything, print, wait for `stop`, tear down; 0 unless the operator died."""
        began = time.monotonic()
        options = self.options
        assets = find_assets(options.assets)
        examples: ExamplesWorldInput | None = None
        account, region = DEFAULT_ACCOUNT_ID, DEFAULT_REGION
        if options.world == "examples":
            examples = ExamplesWorldInput.read(options.examples)
            account, region = examples.account_and_region
        directory = options.directory or Path(tempfile.mkdtemp(prefix="rtp-sandbox-"))
        if options.directory is None or not directory.exists():
            made = [directory]
        else:  # a directory of the user's: only what the sandbox puts in it
            names = ("kube", "operator.log", "operator-tmp", "env.sh", POLICY_FILE)
            made = [directory / name for name in names]
        directory.mkdir(parents=True, exist_ok=True)
        plane = ControlPlane(assets, workdir=directory / "kube")
        standins = AwsStandins(
            clock=Clock(speed=options.speed), seed=options.seed, account_id=account, region=region
        )
        # The control plane starts while the stand-ins and the world are seeded.
        cluster = BackgroundStart(plane, [])
        try:
            standins.start()
            seeded = self._seed(standins, examples, directory)
            api = cluster.result()
            for namespace in seeded.namespaces:
                create_namespace(api, namespace)
            env = {"KUBECONFIG": str(plane.kubeconfig), **isolated_aws_env(standins)}
            if options.operator and not stop.is_set():
                self.operator = OperatorChild.start(
                    operator_argv(()), {**os.environ, **env}, directory / "operator.log"
                )
            exports = {**env, **seeded.exports}
            self._print(plane, standins, seeded, exports, directory, time.monotonic() - began)
            while not stop.wait(0.5):
                self._check_operator()
            return 1 if self.operator_exit is not None else 0
        finally:
            if self.operator is not None:
                self.operator.stop()
            cluster.stop()
            standins.stop()
            if not options.keep:
                for path in made:
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            where = f"kept {directory}" if options.keep else f"removed {directory}"
            self.out.write(f"# sandbox stopped: every child process ended; {where}\n")
            self.out.flush()

    def _check_operator(self) -> None:
        if self.operator is None or self.operator_exit is not None:
            return
        code = self.operator.popen.poll()
        if code is not None:
            self.operator_exit = code
            self.out.write(f"# the operator exited with code {code}; see {self.operator.log}\n")
            self.out.flush()

    def _seed(
        self, standins: AwsStandins, examples: ExamplesWorldInput | None, directory: Path
    ) -> Seeded:
        if examples is not None:
            world = seed_examples(standins, examples.policies, examples.refused)
            return _examples_seeded(world)
        return _demo_seeded(standins, self.options.loops, directory)

    def _print(
        self,
        plane: ControlPlane,
        standins: AwsStandins,
        seeded: Seeded,
        exports: dict[str, str],
        directory: Path,
        seconds: float,
    ) -> None:
        env_file = directory / "env.sh"
        export_lines = [f"export {name}={shlex.quote(value)}" for name, value in exports.items()]
        env_file.write_text("\n".join(export_lines) + "\n")
        endpoints = standins.endpoints
        lines = [
            f"# retraining sandbox in {directory} (ready in {seconds:.1f}s)",
            f"#   kube-apiserver {plane.server} (etcd data in {plane.workdir}/etcd-data)",
            f"#   AWS stand-ins: SageMaker + A2I {endpoints.sagemaker}, S3/STS/CloudWatch/SQS "
            f"{endpoints.s3} (clock x{self.options.speed:g}, account {standins.account_id}, "
            f"{standins.region})",
            *(f"#   {line}" for line in seeded.summary),
        ]
        if self.operator is not None:
            lines.append(f"#   operator pid {self.operator.pid}, log {self.operator.log}")
        lines += [f"# kubeconfig: {plane.kubeconfig}", *export_lines]
        lines.append(f"# the export lines are in {env_file}: `. {env_file}` in another shell")
        lines.append("# next:")
        if self.operator is None:
            lines.append(
                "#   "
                + shlex.join(["retraining-operator", *operator_argv(())[4:]])
                + "   # the operator, in a shell with the exports"
            )
        lines += [f"#   {command}" for command in seeded.next_commands]
        lines.append(
            f"{READY}: Ctrl-C (or kill -TERM {os.getpid()}) stops it and "
            + ("keeps" if self.options.keep else "removes")
            + f" {directory}"
        )
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


@dataclass(frozen=True)
class ExamplesWorldInput:
    """The example files, read before the stand-ins start (they decide the account)."""

    policies: list[Example]
    refused: list[tuple[Path, str]]
    account_and_region: tuple[str, str]

    @classmethod
    def read(cls, directory: Path) -> ExamplesWorldInput:
        if not directory.is_dir():
            raise FileNotFoundError(
                f"no examples directory {directory}: run from a checkout of "
                "a2i-retraining-operator or pass --examples DIR"
            )
        policies, refused = read_examples(directory)
        return cls(policies, refused, emulated_account(policies))


def _examples_seeded(world: ExamplesWorld) -> Seeded:
    summary = [
        f"flow definition {name} with {loops} reviewed loops" for name, loops in world.flows.items()
    ]
    summary += [f"endpoint {name} InService" for name in world.endpoints]
    summary += [f"world for {example.path}" for example in world.seeded]
    summary += [f"skipped {path}: {why}" for path, why in world.skipped]
    commands = []
    if world.seeded:
        # One at a time: the PASCAL VOC examples share a flow definition and an endpoint.
        first = min(world.seeded, key=lambda e: e.path.name != FIRST_EXAMPLE)
        commands = [
            f"kubectl apply -f {first.path}   # one policy per endpoint at a time",
            f"kubectl get rtp -n {first.namespace} -w",
            f"retraining-operator status -n {first.namespace} {first.name}",
            f"kubectl delete -f {first.path}   # then another example",
        ]
    return Seeded(world.namespaces, {}, summary, commands)


def _demo_seeded(standins: AwsStandins, loops: int, directory: Path) -> Seeded:
    world = seed_demo(standins, loops)
    policy = demo_policy(world, min_new_samples=min(20, loops))
    policy_file = directory / POLICY_FILE
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    name = policy["metadata"]["name"]
    summary = [
        f"flow definition {world.flow_definition_arn.rsplit('/', 1)[-1]} with {loops} reviewed "
        f"loops, endpoint {world.endpoint_name} serving {world.model_name}",
        f"a policy for this world: {policy_file}",
    ]
    commands = [
        f"kubectl apply -f {policy_file}",
        f"kubectl get {PLURAL}.{API_GROUP} -n {DEMO_NAMESPACE} -w",
        f"retraining-operator status -n {DEMO_NAMESPACE} {name}",
    ]
    return Seeded([DEMO_NAMESPACE], world.exports(), summary, commands)
