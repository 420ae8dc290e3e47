"""Generate Python gRPC stubs for every ``.proto`` under ``protos/``.

Run as ``python -m protos.build``; the set-up script does this. Output lands
beside each ``.proto`` so ``protos/v1beta1/api.proto`` becomes
``protos.v1beta1.api_pb2`` and ``api_pb2_grpc``. Regenerates only when a
``.proto`` is newer than its stubs.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stale(proto: Path) -> bool:
    outs = [proto.with_name(proto.stem + s) for s in ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")]
    newest_in = proto.stat().st_mtime
    return any(not o.exists() or o.stat().st_mtime < newest_in for o in outs)


def build(force: bool = False) -> list[Path]:
    from grpc_tools import protoc  # build-time only

    built: list[Path] = []
    for proto in sorted((ROOT / "protos").rglob("*.proto")):
        if not force and not _stale(proto):
            continue
        rel = proto.relative_to(ROOT)
        args = [
            "protoc",
            f"-I{ROOT}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}",
            str(rel),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {rel}")
        pkg = proto.parent
        while pkg != ROOT:
            init = pkg / "__init__.py"
            if not init.exists():
                init.write_text('"""Generated-stub package (see protos/build.py)."""\n')
            pkg = pkg.parent
        built.append(rel)
    return built


def main() -> None:
    built = build(force="--force" in sys.argv)
    print("protos: generated " + (", ".join(map(str, built)) if built else "nothing (up to date)"))


if __name__ == "__main__":
    main()
