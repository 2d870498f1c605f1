"""Pod variants for the restricted checker: each breaks (or, for the allowed ones, bends within
the rules) one Pod Security control of the chart's pod. Shared by the plain checker tests and
the kube test that holds the checker against the API server's PodSecurity admission."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Spec = dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Spec], None]
    control: str | None  # the control the checker must name; None: the variant is allowed
    apiserver: bool = True  # False where the API server's own validation would get in first

    def apply(self, spec: Spec) -> Spec:
        out = copy.deepcopy(spec)
        self.mutate(out)
        return out


def _c(spec: Spec) -> dict[str, Any]:
    """The operator container's securityContext."""
    sc: dict[str, Any] = spec["containers"][0].setdefault("securityContext", {})
    return sc


def _pod(spec: Spec) -> dict[str, Any]:
    psc: dict[str, Any] = spec.setdefault("securityContext", {})
    return psc


def _drop_non_root(spec: Spec) -> None:
    _pod(spec).pop("runAsNonRoot", None)
    _c(spec).pop("runAsNonRoot", None)


def _drop_seccomp(spec: Spec) -> None:
    _pod(spec).pop("seccompProfile", None)
    _c(spec).pop("seccompProfile", None)


def _privileged(spec: Spec) -> None:
    _c(spec).update(privileged=True, allowPrivilegeEscalation=True)


def _bare_init_container(spec: Spec) -> None:
    spec["initContainers"] = [{"name": "init", "image": "busybox:1.36", "command": ["true"]}]


CASES = [
    Case(
        "escalation-true",
        lambda s: _c(s).update(allowPrivilegeEscalation=True),
        "allowPrivilegeEscalation",
    ),
    Case(
        "escalation-unset",
        lambda s: _c(s).pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation",
    ),
    Case("non-root-unset", _drop_non_root, "runAsNonRoot"),
    Case("non-root-false", lambda s: _c(s).update(runAsNonRoot=False), "runAsNonRoot"),
    Case("uid-zero", lambda s: _c(s).update(runAsUser=0), "runAsUser"),
    Case("caps-not-dropped", lambda s: _c(s).pop("capabilities"), "capabilities"),
    Case(
        "caps-sys-admin", lambda s: _c(s)["capabilities"].update(add=["SYS_ADMIN"]), "capabilities"
    ),
    Case("caps-chown", lambda s: _c(s)["capabilities"].update(add=["CHOWN"]), "capabilities"),
    Case("caps-net-bind", lambda s: _c(s)["capabilities"].update(add=["NET_BIND_SERVICE"]), None),
    Case(
        "seccomp-unconfined",
        lambda s: _pod(s).update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile",
    ),
    Case("seccomp-unset", _drop_seccomp, "seccompProfile"),
    Case(
        "seccomp-localhost",
        lambda s: _pod(s).update(
            seccompProfile={"type": "Localhost", "localhostProfile": "profiles/operator.json"}
        ),
        None,
    ),
    Case(
        "host-path",
        lambda s: s["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}}),
        "hostPathVolumes",
    ),
    Case(
        "nfs-volume",
        lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "nfs.example", "path": "/"}}),
        "volumeTypes",
    ),
    Case("host-network", lambda s: s.update(hostNetwork=True), "hostNamespaces"),
    Case("host-pid", lambda s: s.update(hostPID=True), "hostNamespaces"),
    Case("host-ipc", lambda s: s.update(hostIPC=True), "hostNamespaces"),
    Case("privileged", _privileged, "privileged"),
    Case("host-port", lambda s: s["containers"][0]["ports"][0].update(hostPort=8080), "hostPorts"),
    Case(
        "unsafe-sysctl",
        lambda s: _pod(s).update(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
        "sysctls",
    ),
    Case(
        "selinux-user",
        lambda s: _c(s).update(seLinuxOptions={"user": "system_u"}),
        "seLinuxOptions",
    ),
    Case(
        "apparmor-unconfined",
        lambda s: _c(s).update(appArmorProfile={"type": "Unconfined"}),
        "appArmorProfile",
    ),
    Case("bare-init-container", _bare_init_container, "allowPrivilegeEscalation"),
    # The API server needs feature gates / hostUsers for these; only the checker sees them.
    Case(
        "proc-mount-unmasked",
        lambda s: _c(s).update(procMount="Unmasked"),
        "procMount",
        apiserver=False,
    ),
    Case(
        "windows-host-process",
        lambda s: _pod(s).update(windowsOptions={"hostProcess": True}),
        "hostProcess",
        apiserver=False,
    ),
]
