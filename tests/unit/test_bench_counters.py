"""The benches' pure helpers: the kernel counters bench.lb reads around each wrk run
(/proc/net/snmp, /proc/net/netstat, /proc/net/stat/nf_conntrack) and the spread of
rounds (bench.localrun_bench)."""

from __future__ import annotations

from bench.lb import CT_COUNTERS, delta, parse_ct_stat, parse_snmp
from bench.localrun_bench import median, spread

SNMP = """Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails RetransSegs
Tcp: 1 200 120000 -1 5021 3 2 17
"""
NETSTAT = """TcpExt: SyncookiesSent TCPTimeouts TCPSynRetrans
TcpExt: 0 4 9
IpExt: InNoRoutes InOctets
IpExt: 0 123456
"""
_CT_NAMES = ("entries  clashres found new invalid ignore delete chainlength insert "
             "insert_failed drop early_drop icmp_error  expect_new expect_create "
             "expect_delete search_restart")
_CPU0 = [0x2A, 1, 0, 0, 3, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0]
_CPU1 = [0x2A, 0, 0, 0, 0xA, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]
CT = "\n".join([_CT_NAMES, *(" ".join(f"{v:08x}" for v in row) for row in (_CPU0, _CPU1))])


def test_snmp_and_netstat_counters_by_protocol_and_name() -> None:
    got = parse_snmp(SNMP) | parse_snmp(NETSTAT)
    assert got["Tcp.ActiveOpens"] == 5021
    assert got["Tcp.RetransSegs"] == 17
    assert got["Tcp.MaxConn"] == -1
    assert got["TcpExt.TCPSynRetrans"] == 9
    assert got["IpExt.InOctets"] == 123456
    assert parse_snmp("") == {}


def test_conntrack_counters_are_summed_over_cpus_but_entries_is_not() -> None:
    got = parse_ct_stat(CT)
    assert got["entries"] == 42
    assert got["insert_failed"] == 3
    assert got["drop"] == 3
    assert got["invalid"] == 13
    assert got["clashres"] == 1
    assert parse_ct_stat("") == {}


def test_delta_of_named_counters_missing_ones_count_zero_gauges_as_they_are() -> None:
    before = parse_ct_stat(CT)
    after = dict(before, insert_failed=before["insert_failed"] + 5)
    assert delta(before, after, CT_COUNTERS) == {
        "insert_failed": 5, "drop": 0, "early_drop": 0, "clashres": 0, "invalid": 0}
    assert delta({}, {"x": 2}, ("x", "y")) == {"x": 2, "y": 0}
    assert delta({"lb.entries": 40}, {"lb.entries": 42}, ("lb.entries",)) == {"lb.entries": 42}


def test_spread_and_median_of_rounds() -> None:
    assert spread([3.0, 1.25, 2.0]) == "1.25–3.00"
    assert spread([2.0]) == "2.00"
    assert spread([]) == "-"
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([]) is None
