"""A just-joined node advertises only what its attached ENIs can serve (issue 17 item 3,
found by ``bench.nodestart --profiles cloud-slow``: the node advertised its instance
limit, 95 ``eni-ip``, with one ENI of 19 IPs attached; the 30-pod burst bound at
once, and the pods past the first ENI waited in ADD for an ENI create + attach
longer than ``--refill-wait``: 11 ``FailedCreatePodSandBox`` "no free IP on this node
(19 in use, 0 cooling down, 19 total) after waiting for ipamd's refill").

"Can grow" covers what ipamd's refill can deliver in an ADD's wait: more IPs on the
ENIs already attached. Room that needs another ENI is not usable now: the agent
writes how many ENIs are attached (``attached_enis``), the device plugin bounds the
growth by their room; ipamd's warm pool attaches the next ENI ahead and the Healthy
count follows it."""

from __future__ import annotations

from cni.agent import capacity as cap
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView
from cni.agent.pool import Allocation, PoolState
from core.capacityfile import CapacityOverrides, parse_capacity_file, render_capacity_file
from core.ids import EniId, IPv4
from core.limits import EniLimits
from core.models import SUBNET_ACTIVE, SubnetStatus
from core.usable import IpTally
from device_plugin.capacity import CapacityInputs, device_set

ZONE = "ap-guangzhou-3"
S5_2XLARGE16 = EniLimits(6, 20)  # 95 secondary IPs on 5 secondary ENIs, 19 each


def test_one_attached_eni_bounds_healthy_to_its_room() -> None:
    full = IpTally(in_use=19, can_grow=True)  # the first ENI's 19 IPs all in use
    got = device_set(CapacityInputs(limits=S5_2XLARGE16, tally=full, attached_enis=1))
    assert (got.capacity, got.healthy) == (95, 19)
    # the next ENI attached: its room is usable now (the ADD waits for the refill)
    got = device_set(CapacityInputs(limits=S5_2XLARGE16, tally=full, attached_enis=2))
    assert got.healthy == 38
    # no ENI attached yet: nothing to advertise
    got = device_set(CapacityInputs(limits=S5_2XLARGE16, tally=IpTally(can_grow=True),
                                    attached_enis=0))
    assert got.healthy == 0
    # not said (an older agent, an operator's file): as before, the instance's limit
    assert device_set(CapacityInputs(limits=S5_2XLARGE16, tally=full)).healthy == 95


def test_the_capacity_file_carries_attached_enis() -> None:
    tally = IpTally(in_use=3, warm=2, can_grow=True)
    text = render_capacity_file(CapacityOverrides(tally=tally, attached_enis=1))
    assert "attached_enis = 1" in text
    assert parse_capacity_file(text) == CapacityOverrides(tally=tally, attached_enis=1)


def test_the_agent_reports_its_attached_enis() -> None:
    enis = tuple(EniInfo(EniId(f"eni-{n:04d}"), f"02:00:00:00:00:{n:02x}", "10.0.1.0/24",
                         IPv4("10.0.1.1"), IPv4(f"10.0.1.{100 + n}"), ZONE) for n in (1, 2))
    ips = tuple(NodeIp(IPv4(f"10.0.1.{10 + i}"), EniId("eni-0001")) for i in range(3))
    state = PoolState()
    state.allocations[ips[0].ip] = Allocation(ips[0].ip, "eni-0001", "c1", "eth0",
                                              "/var/run/netns/p1", "veth1")
    subnets = [SubnetStatus(subnet_id="subnet-1", zone=ZONE, cidr="10.0.1.0/24",
                            available=100, total=253, state=SUBNET_ACTIVE)]
    verdict = cap.tally(NodeIpView(enis, ips), state, subnets, now=0.0)
    assert verdict.attached_enis == 2
    assert parse_capacity_file(cap.render(verdict)).attached_enis == 2
