"""``tke-vpcsim``: serve the emulated VPC/CVM API and metadata service, or talk
to a running one (dump state, set faults, add instances).

Every serve option has a flag, an env var and a default (see docs/cloud.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from vpcsim.faults import Faults
from vpcsim.server import Emulator, make_server
from vpcsim.spec import DEFAULT_SPEC, SpecError, build, load_file

DEFAULT_PORT = 8930
DEFAULT_SECRET_ID = "AKIDsimulator000000000000000000000"  # noqa: S105 - public test id
DEFAULT_SECRET_KEY = "simulator-secret-key-000000000000"  # noqa: S105 - a public test key
log = logging.getLogger("tke-vpcsim")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tke-vpcsim", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve", help="serve the emulator (the default)")
    s.add_argument("--host", default=_env("TKE_VPCSIM_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(_env("TKE_VPCSIM_PORT", str(DEFAULT_PORT))))
    s.add_argument(
        "--port-file",
        default=_env("TKE_VPCSIM_PORT_FILE", ""),
        help="write the bound port here (with --port 0)",
    )
    s.add_argument(
        "--state",
        default=_env("TKE_VPCSIM_STATE", ""),
        help="start state file (YAML/JSON); default: the built-in state",
    )
    s.add_argument(
        "--persist",
        default=_env("TKE_VPCSIM_PERSIST", ""),
        help="keep state in this JSON file (loaded at start if present)",
    )
    s.add_argument(
        "--faults",
        default=_env("TKE_VPCSIM_FAULTS", ""),
        help='fault knobs as JSON, e.g. {"throttle_ratio": 0.1}',
    )
    s.add_argument("--secret-id", default=_env("TKE_VPCSIM_SECRET_ID", DEFAULT_SECRET_ID))
    s.add_argument("--secret-key", default=_env("TKE_VPCSIM_SECRET_KEY", DEFAULT_SECRET_KEY))
    s.add_argument("--seed", type=int, default=None, help="random seed for fault rolls")
    s.add_argument("--log-level", default=_env("TKE_VPCSIM_LOG_LEVEL", "INFO"))
    for name, helptext in (
        ("dump", "print the state of a running emulator"),
        ("faults", "show or set the faults of a running emulator"),
        ("add-instance", "add an instance to a running emulator"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--url", default=_env("TKE_VPCSIM_URL", f"http://127.0.0.1:{DEFAULT_PORT}"))
        if name == "faults":
            c.add_argument("json", nargs="?", default="", help="fault fields to set (JSON)")
        if name == "add-instance":
            c.add_argument("--subnet-id", required=True)
            c.add_argument("--instance-type", default="S5.LARGE8")
            c.add_argument("--instance-id", default=None)
            c.add_argument("--name", default="")
    return p


def _admin(url: str, path: str, data: dict[str, Any] | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(  # noqa: S310 - loopback admin URL
        url.rstrip("/") + path,
        data=body,
        method="POST" if body else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
        '"msg":"%(message)s"}',
    )
    try:
        faults = Faults.from_dict(json.loads(args.faults)) if args.faults else Faults()
        persist = Path(args.persist) if args.persist else None
        if persist is not None and persist.exists():
            spec = load_file(persist)
        elif args.state:
            spec = load_file(Path(args.state))
        else:
            spec = DEFAULT_SPEC
        world = build(spec)
    except (OSError, ValueError, SpecError) as exc:
        print(f"tke-vpcsim: {exc}", file=sys.stderr)
        return 2
    emu = Emulator(
        world,
        secret_id=args.secret_id,
        secret_key=args.secret_key,
        faults=faults,
        persist=persist,
        seed=args.seed,
    )
    server = make_server(emu, args.host, args.port)
    port = server.server_address[1]
    effective = {k: v for k, v in vars(args).items() if k != "secret_key"}
    effective.update(port=port, faults=faults.to_dict())
    effective["secret_key"] = "<redacted>"  # noqa: S105
    log.info("effective config %s", json.dumps(effective, sort_keys=True))
    if args.port_file:
        Path(args.port_file).write_text(str(port))
    print(f"tke-vpcsim listening on {args.host}:{port}", flush=True)
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    emu.save()
    return 0


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if not raw or raw[0] not in ("serve", "dump", "faults", "add-instance", "-h", "--help"):
        raw.insert(0, "serve")  # serving is the default command
    args = _parser().parse_args(raw)
    if args.cmd == "serve":
        return serve(args)
    try:
        if args.cmd == "dump":
            out = _admin(args.url, "/_admin/state")
        elif args.cmd == "faults":
            out = _admin(args.url, "/_admin/faults", json.loads(args.json) if args.json else None)
        else:
            out = _admin(
                args.url,
                "/_admin/instances",
                {
                    "subnet_id": args.subnet_id,
                    "instance_type": args.instance_type,
                    "instance_id": args.instance_id,
                    "name": args.name,
                },
            )
    except (OSError, ValueError) as exc:
        print(f"tke-vpcsim {args.cmd}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
