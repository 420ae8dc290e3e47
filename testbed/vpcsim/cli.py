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

from vpcsim import tls
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
    s.add_argument(
        "--https-port",
        type=int,
        default=int(_env("TKE_VPCSIM_HTTPS_PORT", "-1")),
        help="also serve HTTPS on this port (0 = any free port; default -1 = no HTTPS)",
    )
    s.add_argument(
        "--https-port-file",
        default=_env("TKE_VPCSIM_HTTPS_PORT_FILE", ""),
        help="write the bound HTTPS port here (with --https-port 0)",
    )
    s.add_argument(
        "--ca-cert",
        default=_env("TKE_VPCSIM_CA_CERT", ""),
        help="write the CA certificate (PEM) clients must trust here (required with HTTPS)",
    )
    s.add_argument(
        "--tls-name",
        action="append",
        default=[n for n in _env("TKE_VPCSIM_TLS_NAMES", "").split(",") if n.strip()],
        help="another DNS name or IP for the serving certificate (repeatable; "
        "loopback and --host are always in it)",
    )
    s.add_argument(
        "--vpc-listen",
        action="append",
        default=[],
        metavar="NETNS=HOST:PORT",
        help="also serve plain HTTP inside this network namespace (a file such as "
        "/run/netns/x): the VPC side, where instances reach the API and their own "
        "metadata at /latest/meta-data/ by their private IP; no /_admin/ there (repeatable)",
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
    try:
        pair = _serving_pair(args)
        vpc_listeners = [_vpc_listen(v) for v in args.vpc_listen]
    except ValueError as exc:
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
    servers = []
    try:
        servers.append(make_server(emu, args.host, args.port))
        if pair is not None:
            servers.append(make_server(emu, args.host, args.https_port, tls.server_context(pair)))
        for netns, host, port in vpc_listeners:
            servers.append(make_server(emu, host, port, netns=netns))
            print(f"tke-vpcsim listening on {host}:{port} in {netns}", flush=True)
        _announce(args, [int(s.server_address[1]) for s in servers], pair, faults)
    except OSError as exc:  # a port in use, an unwritable CA or port file
        print(f"tke-vpcsim: {exc}", file=sys.stderr)
        for server in servers:
            server.server_close()
        return 2
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    emu.save()
    return 0


def _vpc_listen(text: str) -> tuple[str, str, int]:
    """NETNS=HOST:PORT -> (netns, host, port); a clear error otherwise."""
    netns, sep, addr = text.partition("=")
    host, _, port = addr.rpartition(":")
    if not sep or not netns.startswith("/") or not host or not port.isdigit():
        raise ValueError(f"--vpc-listen wants /path/of/netns=HOST:PORT, got {text!r}")
    return netns, host, int(port)


def _serving_pair(args: argparse.Namespace) -> tls.ServingPair | None:
    """A fresh CA and serving certificate when HTTPS is asked for, else None."""
    if args.https_port < 0:
        if args.ca_cert or args.https_port_file:
            raise ValueError("--ca-cert and --https-port-file need --https-port")
        return None
    if not args.ca_cert:
        raise ValueError("--https-port needs --ca-cert PATH (where clients find the CA to trust)")
    return tls.issue(tls.serving_names(args.host, args.tls_name))


def _announce(
    args: argparse.Namespace, ports: list[int], pair: tls.ServingPair | None, faults: Faults
) -> None:
    """Log the effective config; write the CA, then the port files (a port file
    means "ready": the CA is in place before it); print where we listen."""
    effective = {k: v for k, v in vars(args).items() if k != "secret_key"}
    effective.update(port=ports[0], faults=faults.to_dict())
    if pair is not None:
        effective["https_port"] = ports[1]
    effective["secret_key"] = "<redacted>"  # noqa: S105
    log.info("effective config %s", json.dumps(effective, sort_keys=True))
    if pair is not None:
        tls.write_ca(Path(args.ca_cert), pair)
        if args.https_port_file:
            Path(args.https_port_file).write_text(str(ports[1]))
    if args.port_file:
        Path(args.port_file).write_text(str(ports[0]))
    print(f"tke-vpcsim listening on {args.host}:{ports[0]}", flush=True)
    if pair is not None:
        print(
            f"tke-vpcsim serving HTTPS on {args.host}:{ports[1]} (CA: {args.ca_cert})", flush=True
        )


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
