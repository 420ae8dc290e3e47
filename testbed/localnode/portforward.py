"""TCP forwards from a node's network namespace to services on the host's loopback.

The control plane listens on the host's 127.0.0.1; a node's kubelet, agent and device
plugin live in the node's netns. This process binds each listener inside the node netns
(setns around bind) and connects to the target from the host netns, so the node reaches
``https://127.0.0.1:<apiserver port>`` with the same kubeconfig as the host.

Usage: python -m localnode.portforward --netns /run/netns/x --forward 127.0.0.1:6443=127.0.0.1:6443
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Sequence

from localcluster.streams import pump as _pump
from localnode.netns import entered

log = logging.getLogger("localnode.portforward")


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_forward(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected LISTEN=TARGET, got {text!r}")
    return parse_addr(listen), parse_addr(target)


def handler(target: tuple[str, int]):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(*target)
        except OSError as exc:
            log.warning("connect to %s:%d failed: %s", *target, exc)
            writer.close()
            return
        await asyncio.gather(_pump(reader, t_writer), _pump(t_reader, writer))
        for w in (writer, t_writer):
            w.close()
    return handle


def bind_in(netns: str, addr: tuple[str, int]) -> socket.socket:
    with entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            raise OSError(f"cannot bind {addr[0]}:{addr[1]} in netns {netns}: {exc}") from exc
        sock.listen(128)
    return sock


async def serve(netns: str, forwards: Sequence[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = []
    for listen, target in forwards:
        sock = bind_in(netns, listen)
        servers.append(await asyncio.start_server(handler(target), sock=sock))
        log.info("forwarding %s:%d (netns %s) -> %s:%d (host)", *listen, netns, *target)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localnode.portforward", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--netns", required=True, help="path of the node's netns (listen side)")
    p.add_argument("--forward", action="append", type=parse_forward, required=True,
                   help="LISTEN_HOST:PORT=TARGET_HOST:PORT (repeatable)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        asyncio.run(serve(args.netns, args.forward))
    except OSError as exc:
        print(f"portforward: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
