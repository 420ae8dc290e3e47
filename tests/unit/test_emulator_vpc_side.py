"""The emulator as instances see it from inside the VPC: metadata by the caller's address,
no admin API there, and a clear error for a bad --vpc-listen."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from vpcsim.cli import _vpc_listen
from vpcsim.server import Emulator, make_server
from vpcsim.spec import DEFAULT_SPEC, build


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(build(DEFAULT_SPEC), secret_id="id", secret_key="key")


def test_metadata_knows_the_instance_by_its_private_ip(emulator: Emulator) -> None:
    inst = next(iter(emulator.world.instances.values()))
    assert emulator.metadata.instance_at(inst.private_ip) == inst.instance_id
    assert emulator.metadata.instance_at("192.0.2.250") is None


@pytest.fixture
def vpc_side(emulator: Emulator) -> Iterator[str]:
    # a VPC-side server (netns="" would be the admin side; the handler flag is what
    # differs, so build it the way make_server does for a namespace, on loopback)
    server = make_server(emulator, "127.0.0.1", 0)
    server.RequestHandlerClass.vpc_side = True  # type: ignore[attr-defined]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_vpc_side_has_no_admin_api_and_names_an_unknown_caller(vpc_side: str) -> None:
    code, _ = get(vpc_side + "/_admin/state")
    assert code == 404
    code, body = get(vpc_side + "/latest/meta-data/instance-id")
    assert code == 404 and "no instance has the private IP 127.0.0.1" in body, body
    code, body = get(vpc_side + "/healthz")
    assert code == 200


@pytest.mark.parametrize("bad", ["10.0.0.1:80", "/run/netns/x=10.0.0.1", "x=10.0.0.1:80",
                                 "/run/netns/x=:80", "/run/netns/x=h:port"])
def test_a_bad_vpc_listen_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="--vpc-listen wants"):
        _vpc_listen(bad)
    assert _vpc_listen("/run/netns/f=169.254.0.23:80") == ("/run/netns/f", "169.254.0.23", 80)
