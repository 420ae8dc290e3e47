"""The apiserver's way into the cluster network: an HTTP CONNECT proxy on a unix socket.

A managed control plane does not sit on its nodes' network; kube-apiserver reaches
kubelets (``kubectl logs``/``exec``), webhooks and Services through an egress proxy
(``EgressSelectorConfiguration``, selection ``cluster``, protocol ``HTTPConnect``; the
Konnectivity model). This is that proxy: it listens on a unix socket (reachable from the
host's network namespace, where the apiserver runs) and is started inside the cluster's
network namespace (``nsenter --net=...``), so every CONNECT is dialled from there — where
kube-proxy's rules give ClusterIPs their endpoints.

Usage: nsenter --net=/run/netns/x python -m localcluster.egressproxy --socket /path/egress.sock
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from localcluster.streams import pump as _pump

log = logging.getLogger("localcluster.egressproxy")
MAX_HEAD = 16 * 1024
CONNECT_TIMEOUT_S = 10.0


def parse_connect(head: bytes) -> tuple[str, int]:
    """(host, port) of a ``CONNECT host:port HTTP/1.x`` request head; ValueError else."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not a CONNECT request: {line!r}")
    host, sep, port = parts[1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"CONNECT target is not host:port: {parts[1]!r}")
    return host.strip("[]"), int(port)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        host, port = parse_connect(head[:MAX_HEAD])
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        log.warning("bad request: %s", exc)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        writer.close()
        return
    try:
        t_reader, t_writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
    except (TimeoutError, OSError) as exc:
        log.warning("CONNECT %s:%d failed: %s", host, port, exc)
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(_pump(reader, t_writer), _pump(t_reader, writer))
    for w in (writer, t_writer):
        w.close()


async def serve(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await asyncio.start_unix_server(handle, path=path, limit=MAX_HEAD)
    os.chmod(path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("egress proxy on %s", path)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def egress_selector_config(socket_path: str) -> str:
    """The EgressSelectorConfiguration (YAML) that sends the apiserver's ``cluster``
    traffic through the proxy at ``socket_path``."""
    return (
        "apiVersion: apiserver.k8s.io/v1beta1\n"
        "kind: EgressSelectorConfiguration\n"
        "egressSelections:\n"
        "  - name: cluster\n"
        "    connection:\n"
        "      proxyProtocol: HTTPConnect\n"
        "      transport:\n"
        "        uds:\n"
        f"          udsName: {socket_path}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localcluster.egressproxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--socket", required=True, help="unix socket path to listen on")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args.socket))
    except OSError as exc:
        print(f"egressproxy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
