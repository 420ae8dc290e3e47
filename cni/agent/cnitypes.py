"""CNI wire types on the agent side: versions, errors, the request the shim
forwards, the network config, and results per spec version. Pure: no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

SUPPORTED_VERSIONS: Final = ("0.4.0", "1.0.0", "1.1.0")
VERSIONS_WITH_GC_STATUS: Final = ("1.1.0",)
COMMANDS: Final = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
PROTOCOL_VERSION: Final = 1
GATEWAY: Final = "169.254.1.1"
VALID_ATTACHMENTS_KEY: Final = "cni.dev/valid-attachments"

# error codes (spec) and ours (100+)
ERR_INCOMPATIBLE_VERSION: Final = 1
ERR_UNSUPPORTED_FIELD: Final = 2
ERR_UNKNOWN_CONTAINER: Final = 3
ERR_INVALID_ENV: Final = 4
ERR_IO: Final = 5
ERR_DECODE: Final = 6
ERR_INVALID_CONFIG: Final = 7
ERR_TRY_AGAIN: Final = 11
ERR_NOT_AVAILABLE: Final = 50
ERR_CHECK_FAILED: Final = 100  # CHECK found the pod's network differs from prevResult
ERR_DELEGATE: Final = 102  # a delegate plugin failed
ERR_INTERNAL: Final = 110


class CniError(Exception):
    """A CNI error with its code; ``details`` says what to do about it."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"[{code}] {msg}" + (f" ({details})" if details else ""))
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        body: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return body


@dataclass(slots=True)
class CniRequest:
    """One CNI call as the shim forwarded it."""

    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    path: str
    conf: dict[str, Any]
    raw_env: dict[str, str] = field(default_factory=dict)

    @property
    def cni_version(self) -> str:
        version = self.conf.get("cniVersion")
        return version if isinstance(version, str) and version else SUPPORTED_VERSIONS[-1]

    @property
    def pod_namespace(self) -> str:
        return self.args.get("K8S_POD_NAMESPACE", "")

    @property
    def pod_name(self) -> str:
        return self.args.get("K8S_POD_NAME", "")

    @property
    def pod_uid(self) -> str:
        return self.args.get("K8S_POD_UID", "")

    @property
    def prev_result(self) -> dict[str, Any] | None:
        prev = self.conf.get("prevResult")
        return prev if isinstance(prev, dict) else None


def parse_cni_args(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CniError(ERR_INVALID_ENV, f"CNI_ARGS is invalid: {part!r}", "want K=V;K=V")
        out[key] = value
    return out


def decode_wire_request(raw: bytes) -> tuple[dict[str, str], str]:
    """The shim's request: (env, stdin text). CniError(6) when it is not ours."""
    try:
        msg = json.loads(raw)
    except ValueError as exc:
        raise CniError(ERR_DECODE, f"bad request from the shim: {exc}") from None
    if not isinstance(msg, dict) or msg.get("v") != PROTOCOL_VERSION:
        version = msg.get("v") if isinstance(msg, dict) else None
        raise CniError(
            ERR_INCOMPATIBLE_VERSION,
            f"shim speaks protocol {version!r}, agent speaks {PROTOCOL_VERSION}",
            "reinstall the plugin: restart tke-eni-agent",
        )
    env = msg.get("env")
    stdin = msg.get("stdin")
    if not isinstance(env, dict) or not isinstance(stdin, str):
        raise CniError(ERR_DECODE, "bad request from the shim: env or stdin missing")
    return {str(k): str(v) for k, v in env.items()}, stdin


def parse_request(env: dict[str, str], stdin: str) -> CniRequest:  # noqa: PLR0912
    """Validate the network config; env was checked by the shim, but the agent
    re-checks what it relies on (it can be called by other clients)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, f"CNI_COMMAND is invalid: {command!r}")
    try:
        conf = json.loads(stdin) if stdin.strip() else None
    except ValueError as exc:
        raise CniError(ERR_DECODE, f"network config is not valid JSON: {exc}") from None
    if conf is None and command in ("STATUS", "VERSION"):
        conf = {}
    if not isinstance(conf, dict):
        raise CniError(ERR_DECODE, "network config must be a JSON object")
    version = conf.get("cniVersion")
    if command not in ("VERSION",):
        if not isinstance(version, str) or not version:
            raise CniError(ERR_INVALID_CONFIG, "network config has no cniVersion")
        if version not in SUPPORTED_VERSIONS:
            raise CniError(
                ERR_INCOMPATIBLE_VERSION,
                f"incompatible CNI version {version!r}",
                "supported: " + ", ".join(SUPPORTED_VERSIONS),
            )
        if command in ("GC", "STATUS") and version not in VERSIONS_WITH_GC_STATUS:
            raise CniError(
                ERR_INCOMPATIBLE_VERSION, f"config version {version} does not allow {command}"
            )
        if command in ("ADD", "DEL", "CHECK", "GC"):
            if not isinstance(conf.get("name"), str) or not conf.get("name"):
                raise CniError(ERR_INVALID_CONFIG, "network config has no name")
            if not isinstance(conf.get("type"), str) or not conf.get("type"):
                raise CniError(ERR_INVALID_CONFIG, "network config has no type")
        if command == "CHECK" and not isinstance(conf.get("prevResult"), dict):
            raise CniError(ERR_INVALID_CONFIG, "CHECK needs prevResult")
    for name in _required_env(command):
        if not env.get(name):
            raise CniError(ERR_INVALID_ENV, f"{name} is not set", f"required for {command}")
    return CniRequest(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=parse_cni_args(env.get("CNI_ARGS", "")),
        path=env.get("CNI_PATH", ""),
        conf=conf,
        raw_env=env,
    )


def _required_env(command: str) -> tuple[str, ...]:
    if command in ("ADD", "CHECK"):
        return ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
    if command == "DEL":
        return ("CNI_CONTAINERID", "CNI_IFNAME")
    return ()


@dataclass(frozen=True, slots=True)
class PodAttachment:
    """What ADD built, for the CNI result."""

    ip: str
    host_veth: str
    host_mac: str
    ifname: str
    pod_mac: str
    netns: str
    mtu: int


def build_result(
    version: str, att: PodAttachment, prev: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ADD result for ``version``, merged onto ``prev`` when we are not
    first in the chain (our interfaces appended, indices shifted)."""
    base: dict[str, Any] = dict(prev) if prev else {}
    interfaces = list(base.get("interfaces") or [])
    host_if: dict[str, Any] = {"name": att.host_veth, "mac": att.host_mac}
    pod_if: dict[str, Any] = {"name": att.ifname, "mac": att.pod_mac, "sandbox": att.netns}
    if version == "1.1.0":
        host_if["mtu"] = att.mtu
        pod_if["mtu"] = att.mtu
    interfaces += [host_if, pod_if]
    ip: dict[str, Any] = {
        "address": f"{att.ip}/32",
        "gateway": GATEWAY,
        "interface": len(interfaces) - 1,
    }
    if version == "0.4.0":
        ip["version"] = "4"
    routes = list(base.get("routes") or [])
    if not any(r.get("dst") == "0.0.0.0/0" for r in routes if isinstance(r, dict)):
        routes.append({"dst": "0.0.0.0/0", "gw": GATEWAY})
    base.update(
        cniVersion=version,
        interfaces=interfaces,
        ips=[*list(base.get("ips") or []), ip],
        routes=routes,
        dns=base.get("dns") or {},
    )
    return base


def ips_of_result(result: dict[str, Any] | None) -> list[str]:
    """IPv4 addresses (no prefix) a result carries."""
    out: list[str] = []
    for item in (result or {}).get("ips") or []:
        if isinstance(item, dict) and isinstance(item.get("address"), str):
            addr = item["address"].split("/")[0]
            if "." in addr:
                out.append(addr)
    return out
