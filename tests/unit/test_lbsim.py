"""The LB stand-in's pure parts (localrun.lbsim, localrun.lbclient, bench.lb): which
endpoints are backends, the nft script, the echo reply, wrk's report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.lb import parse_wrk
from localrun.lbclient import echo_deployment, parse_reply, percentile
from localrun.lbsim import TABLE, Backend, ready_backends, render


def _slice(endpoints: list[dict[str, Any]], ports: list[dict[str, Any]] | None = None,
           address_type: str = "IPv4") -> dict[str, Any]:
    return {"addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 80,
                                                       "protocol": "TCP"}]}


def _ep(address: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [address], "conditions": conditions}


def test_only_ready_not_terminating_endpoints_are_backends() -> None:
    slices = [_slice([_ep("10.0.32.3", ready=True, serving=True, terminating=False),
                      _ep("10.0.32.4", ready=False, serving=True, terminating=True),
                      _ep("10.0.32.5", ready=False),  # starting: probe not passed yet
                      {"addresses": ["10.0.32.6"]}]),  # no conditions: ready per the API
              _slice([_ep("10.0.48.3", ready=True), _ep("10.0.32.3", ready=True)])]
    assert ready_backends(slices) == (Backend("10.0.32.3", 80), Backend("10.0.32.6", 80),
                                      Backend("10.0.48.3", 80))


def test_port_by_name_and_other_address_types_ignored() -> None:
    ports = [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}]
    slices = [_slice([_ep("10.0.32.3", ready=True)], ports),
              _slice([_ep("fd00::3", ready=True)], address_type="IPv6")]
    assert ready_backends(slices, "http") == (Backend("10.0.32.3", 8080),)
    assert ready_backends(slices, "nope") == ()
    assert ready_backends([_slice([_ep("10.0.32.3", ready=True)], [])]) == ()


def test_render_replaces_the_table_with_one_dnat_per_listener() -> None:
    script = render("198.18.0.1", {80: [Backend("10.0.32.9", 80), Backend("10.0.32.3", 80),
                                        Backend("10.0.32.3", 80)],
                                   8080: [], 8081: [Backend("10.0.3.2", 30080)]})
    lines = script.splitlines()
    assert lines[:2] == [f"table ip {TABLE}", f"delete table ip {TABLE}"]  # one transaction
    assert "dnat to 10.0.32.3:80" in lines[4] and "dnat to 10.0.32.9:80" in lines[7]
    assert ("ip daddr 198.18.0.1 tcp dport 80 numgen random mod 2 vmap "
            "{ 0 : goto be_80_0, 1 : goto be_80_1 }") in script
    assert "dport 8080" not in script  # no backend: no rule, the LB refuses
    assert "snat" not in script and "masquerade" not in script  # the client address is kept
    assert "tcp dport 8081 numgen random mod 1" in script


@pytest.mark.parametrize("bad", [lambda: Backend("10.0.32.300", 80),
                                 lambda: Backend("10.0.32.3", 0),
                                 lambda: render("nope", {}),
                                 lambda: render("198.18.0.1", {70000: []})])
def test_bad_input_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        bad()


def test_echo_reply_and_percentile() -> None:
    status, fields = parse_reply(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                                 b"peer=198.18.0.10 pod=lb-web-abc\n")
    assert (status, fields) == (200, {"peer": "198.18.0.10", "pod": "lb-web-abc"})
    _, fields = parse_reply(b"HTTP/1.0 200 OK\r\n\r\npeer=[::ffff:10.0.3.2] pod=x\n")
    assert fields["peer"] == "10.0.3.2"
    with pytest.raises(ValueError, match="not an HTTP reply"):
        parse_reply(b"garbage")
    assert percentile([], 99) == 0.0
    assert percentile([float(i) for i in range(1, 101)], 50) == 50.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_echo_deployment_drains_and_rolls_without_unavailability() -> None:
    d = echo_deployment("lb-web", 3, ["node-a", "node-b"])
    spec = d["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert c["readinessProbe"]["httpGet"]["port"] == 80
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert spec["terminationGracePeriodSeconds"] > 5
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["node-a", "node-b"]


WRK = """Running 5s test @ http://198.18.0.1:80/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.29ms    2.91ms  35.18ms   94.79%
    Req/Sec     3.69k   772.44     5.15k    73.33%
  Latency Distribution
     50%  869.00us
     75%    2.57ms
     90%    3.91ms
     99%    1.02s
  11093 requests in 3.02s, 2.22MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   3669.68
Transfer/sec:    752.57KB
"""


def test_parse_wrk() -> None:
    got = parse_wrk(WRK)
    assert (got.rps, got.p50_ms, got.p99_ms, got.requests, got.errors) == (
        3669.68, 0.869, 1020.0, 11093, 10)
    with pytest.raises(ValueError, match="99% latency"):
        parse_wrk(WRK.replace("99%", "98%"))
