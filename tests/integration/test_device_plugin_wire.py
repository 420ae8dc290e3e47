"""Wire check: our protos/v1beta1/api.proto (written from the facts) against
the kubelet's own api.proto from the Go module cache — package, services,
methods (with streaming), messages, field names, numbers, types and labels.
Any difference fails. The kubelet's file is read, never copied.

Set-up: the control-plane build (hack/setup.sh, step: k8s build) puts
k8s.io/kubelet in the Go module cache; by hand:
``cd $(mktemp -d) && go mod download -json k8s.io/kubelet@v0.33.13``.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OURS = REPO / "protos" / "v1beta1" / "api.proto"
GOMODCACHE = os.environ.get("GOMODCACHE", "/root/go/pkg/mod")
KUBELET_GLOB = "k8s.io/kubelet@v0.*/pkg/apis/deviceplugin/v1beta1/api.proto"
SETUP_STEP = (
    "run hack/setup.sh (step: k8s build, which downloads k8s.io/kubelet into the Go module "
    "cache), or: cd $(mktemp -d) && go mod download -json k8s.io/kubelet@v0.33.13"
)


@dataclass
class Proto:
    package: str = ""
    # message → field name → (number, label, type)
    messages: dict[str, dict[str, tuple[int, str, str]]] = field(default_factory=dict)
    # service → method → (request, request streaming, response, response streaming)
    services: dict[str, dict[str, tuple[str, bool, str, bool]]] = field(default_factory=dict)


_FIELD = re.compile(
    r"(?:(repeated|optional)\s+)?(map\s*<\s*\w+\s*,\s*[\w.]+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)"
    r"\s*(?:\[[^\]]*\])?\s*;"
)
_RPC = re.compile(
    r"rpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)"
)


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _blocks(text: str, keyword: str) -> list[tuple[str, str]]:
    """Top-level ``keyword Name { body }`` blocks, braces matched."""
    out = []
    for m in re.finditer(rf"\b{keyword}\s+(\w+)\s*\{{", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append((m.group(1), text[m.end() : i - 1]))
    return out


def _short(type_name: str) -> str:
    t = re.sub(r"\s+", "", type_name)
    return t.removeprefix("v1beta1.")


def parse(path: Path) -> Proto:
    text = _strip_comments(path.read_text())
    proto = Proto()
    pkg = re.search(r"\bpackage\s+([\w.]+)\s*;", text)
    proto.package = pkg.group(1) if pkg else ""
    for name, body in _blocks(text, "message"):
        fields = {}
        for m in _FIELD.finditer(body):
            label, typ, fname, number = m.groups()
            fields[fname] = (int(number), label or "", _short(typ))
        proto.messages[name] = fields
    for name, body in _blocks(text, "service"):
        proto.services[name] = {
            m.group(1): (_short(m.group(3)), bool(m.group(2)), _short(m.group(5)), bool(m.group(4)))
            for m in _RPC.finditer(body)
        }
    return proto


def kubelet_proto() -> Path:
    found = sorted(
        glob.glob(os.path.join(GOMODCACHE, KUBELET_GLOB)),
        key=lambda p: [int(x) for x in re.findall(r"@v0\.(\d+)\.(\d+)", p)[0]],
    )
    assert found, f"the kubelet's api.proto is not in {GOMODCACHE}: {SETUP_STEP}"
    return Path(found[-1])


def diff(ours: Proto, theirs: Proto) -> list[str]:
    problems = []
    if ours.package != theirs.package:
        problems.append(f"package: ours {ours.package!r}, kubelet {theirs.package!r}")
    for kind, a, b in (("message", ours.messages, theirs.messages),
                       ("service", ours.services, theirs.services)):  # fmt: skip
        for name in sorted(set(a) | set(b)):
            if name not in a:
                problems.append(f"{kind} {name}: missing in ours")
            elif name not in b:
                problems.append(f"{kind} {name}: not in the kubelet's")
            else:
                for member in sorted(set(a[name]) | set(b[name])):  # type: ignore[arg-type]
                    ours_m = a[name].get(member)  # type: ignore[attr-defined]
                    theirs_m = b[name].get(member)  # type: ignore[attr-defined]
                    if ours_m != theirs_m:
                        problems.append(f"{name}.{member}: ours {ours_m}, kubelet {theirs_m}")
    return problems


def test_parser_reads_our_proto() -> None:
    ours = parse(OURS)
    assert ours.package == "v1beta1"
    assert ours.messages["ContainerAllocateResponse"]["envs"] == (1, "", "map<string,string>")
    assert ours.messages["Device"]["ID"] == (1, "", "string")
    assert ours.services["DevicePlugin"]["ListAndWatch"] == (
        "Empty",
        False,
        "ListAndWatchResponse",
        True,
    )
    assert ours.services["Registration"]["Register"] == ("RegisterRequest", False, "Empty", False)
    assert len(ours.messages) == 20


def test_our_proto_matches_the_kubelets() -> None:
    theirs_path = kubelet_proto()
    ours, theirs = parse(OURS), parse(theirs_path)
    assert theirs.messages, f"parsed no message from {theirs_path}"
    problems = diff(ours, theirs)
    assert not problems, f"protos/v1beta1/api.proto differs from {theirs_path}:\n" + "\n".join(
        problems
    )
    print(f"\nwire check: {len(ours.messages)} messages, "
          f"{sum(map(len, ours.services.values()))} methods match {theirs_path}")  # fmt: skip


def test_generated_stubs_speak_the_wire_names() -> None:
    from protos.v1beta1 import api_pb2

    svc = api_pb2.DESCRIPTOR.services_by_name
    assert svc["Registration"].full_name == "v1beta1.Registration"
    assert [m.name for m in svc["DevicePlugin"].methods] == [
        "GetDevicePluginOptions",
        "ListAndWatch",
        "GetPreferredAllocation",
        "Allocate",
        "PreStartContainer",
    ]
    assert svc["DevicePlugin"].methods_by_name["ListAndWatch"].server_streaming
