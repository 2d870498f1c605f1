"""An explicit checker for the Pod Security Standards "restricted" profile (which includes
"baseline"), written from https://kubernetes.io/docs/concepts/security/pod-security-standards/.

``violations(pod_spec, annotations)`` returns one human-readable string per violated control,
each starting with the control's name; an empty list means the pod meets the profile. The kube
tests cross-check it against the API server's own PodSecurity admission.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Restricted allows adding only this one (baseline allows a longer list, which it subsumes).
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for field in CONTAINER_LISTS:
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def _seccomp_ok(profile: Mapping[str, Any] | None) -> bool | None:
    """True: RuntimeDefault/Localhost; False: anything else set; None: not set."""
    if not profile or profile.get("type") is None:
        return None
    return profile["type"] in ("RuntimeDefault", "Localhost")


def violations(spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """Every "restricted" control the pod spec (plus pod annotations) violates."""
    out: list[str] = []
    psc: Mapping[str, Any] = spec.get("securityContext") or {}
    containers = list(_containers(spec))

    # ---------------------------------------------------------------- baseline controls
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("hostProcess: pod securityContext.windowsOptions.hostProcess is true")
    for name, c in containers:
        if ((c.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"hostProcess: {name} windowsOptions.hostProcess is true")

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"hostNamespaces: {field} is true")

    for name, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"privileged: {name} is privileged")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"hostPorts: {name} uses hostPort {port['hostPort']}")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"procMount: {name} procMount is {sc['procMount']}")

    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            out.append(f"hostPathVolumes: volume {volume.get('name')} is a hostPath")

    def selinux(where: str, options: Mapping[str, Any] | None) -> None:
        if not options:
            return
        if options.get("type", "") not in SELINUX_TYPES:
            out.append(f"seLinuxOptions: {where} type {options['type']!r} not allowed")
        for key in ("user", "role"):
            if options.get(key):
                out.append(f"seLinuxOptions: {where} sets {key}")

    selinux("pod", psc.get("seLinuxOptions"))
    for name, c in containers:
        selinux(name, (c.get("securityContext") or {}).get("seLinuxOptions"))

    def apparmor(where: str, profile: Mapping[str, Any] | None) -> None:
        if profile and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append(f"appArmorProfile: {where} type {profile.get('type')!r} not allowed")

    apparmor("pod", psc.get("appArmorProfile"))
    for name, c in containers:
        apparmor(name, (c.get("securityContext") or {}).get("appArmorProfile"))
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            out.append(f"appArmorProfile: annotation {key}={value}")

    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctls: {sysctl.get('name')} is not a safe sysctl")

    # ---------------------------------------------------------------- restricted controls
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            out.append(f"volumeTypes: volume {volume.get('name')} has type {sorted(kinds)}")

    for name, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"allowPrivilegeEscalation: {name} does not set it to false")

    pod_non_root = psc.get("runAsNonRoot")
    if pod_non_root is False:
        out.append("runAsNonRoot: pod sets runAsNonRoot false")
    for name, c in containers:
        value = (c.get("securityContext") or {}).get("runAsNonRoot")
        if value is False:
            out.append(f"runAsNonRoot: {name} sets runAsNonRoot false")
        elif value is None and pod_non_root is not True:
            out.append(f"runAsNonRoot: neither the pod nor {name} sets runAsNonRoot true")

    if psc.get("runAsUser") == 0:
        out.append("runAsUser: pod runs as UID 0")
    for name, c in containers:
        if (c.get("securityContext") or {}).get("runAsUser") == 0:
            out.append(f"runAsUser: {name} runs as UID 0")

    pod_seccomp = _seccomp_ok(psc.get("seccompProfile"))
    if pod_seccomp is False:
        out.append(f"seccompProfile: pod type {psc['seccompProfile']['type']!r}")
    for name, c in containers:
        ok = _seccomp_ok((c.get("securityContext") or {}).get("seccompProfile"))
        if ok is False:
            out.append(f"seccompProfile: {name} type is not RuntimeDefault/Localhost")
        elif ok is None and pod_seccomp is not True:
            out.append(f"seccompProfile: neither the pod nor {name} sets one")

    for name, c in containers:
        caps = (c.get("securityContext") or {}).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"capabilities: {name} does not drop ALL")
        added = set(caps.get("add") or [])
        if added - RESTRICTED_CAPABILITIES:
            out.append(f"capabilities: {name} adds {sorted(added - RESTRICTED_CAPABILITIES)}")
    return out
