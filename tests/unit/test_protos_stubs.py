"""The committed gRPC stubs (protos/build.py): they say what the .proto says, and
they load with the oldest protobuf and grpcio that setup.cfg allows (a stub made by
a newer compiler refuses an older runtime at import)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from protos import build

ROOT = Path(__file__).resolve().parents[2]


def floor(requirement: str) -> tuple[int, ...]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    for line in cfg["options"]["install_requires"].splitlines():
        m = re.fullmatch(rf"\s*{re.escape(requirement)}\s*>=\s*([0-9.]+)\s*,.*", line)
        if m:
            return tuple(int(p) for p in m[1].split("."))
    raise AssertionError(f"setup.cfg: no '{requirement}>=' in install_requires")


def test_committed_stubs_match_the_protos() -> None:
    problems = build.drift()
    assert not problems, (
        f"{problems}: regenerate with grpcio-tools=={build.GRPC_TOOLS_PIN}: python -m protos.build")


def test_stubs_load_with_the_oldest_supported_runtime() -> None:
    protos = build.protos()
    assert protos
    for proto in protos:
        pb2 = proto.with_name(proto.stem + "_pb2.py").read_text()
        m = re.search(r"^# Protobuf Python Version: ([0-9.]+)", pb2, re.M)
        assert m, f"{proto}: no gencode version in the _pb2 header"
        gencode = tuple(int(p) for p in m[1].split("."))
        assert gencode[:2] <= floor("protobuf")[:2], (
            f"{proto}: gencode {m[1]} needs a newer protobuf than setup.cfg's floor "
            f"{floor('protobuf')}: regenerate with grpcio-tools=={build.GRPC_TOOLS_PIN}")
        grpc_stub = proto.with_name(proto.stem + "_pb2_grpc.py").read_text()
        g = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", grpc_stub)
        if g:
            assert tuple(int(p) for p in g[1].split(".")) <= floor("grpcio"), (
                f"{proto}: its gRPC stub demands grpcio >= {g[1]}")


def test_regeneration_is_refused_with_another_grpcio_tools(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.metadata, "version", lambda name: "0.0.0")
    with pytest.raises(SystemExit, match=re.escape(f"grpcio-tools=={build.GRPC_TOOLS_PIN}")):
        build.build()
