"""The real SDK (through our adapter) against the emulator over HTTP: every
action of the ports, and the error paths that cannot succeed."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from cloud.adapter import TencentCloud
from cloud.errors import CloudError, NotFoundError
from core.ids import EniId, InstanceId, SubnetId, VpcId
from core.names import TAG_CLUSTER_ID, TAG_CREATOR, TAG_INSTANCE_ID
from tests.emulator_client import cloud_for
from vpcsim.testing import EmulatorHandle, run_emulator

VPC = VpcId("vpc-sim00001")
POD3 = SubnetId("subnet-sim00033")
POD4 = SubnetId("subnet-sim00044")
NODE1 = InstanceId("ins-sim00001")  # S5.LARGE8, zone 3
NODE2 = InstanceId("ins-sim00002")  # SA2.MEDIUM4, zone 4


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def cloud(emu: EmulatorHandle) -> TencentCloud:
    return cloud_for(emu)


def _available(cloud: TencentCloud, subnet: SubnetId) -> int:
    return cloud.describe_subnets([subnet])[0].available_ips


def test_describe_instances(cloud: TencentCloud) -> None:
    got = {i.instance_id: i for i in cloud.describe_instances([NODE1, NODE2])}
    assert got[NODE1].instance_type == "S5.LARGE8"
    assert got[NODE1].zone == "ap-guangzhou-3"
    assert got[NODE1].vpc_id == VPC
    assert got[NODE1].subnet_id == "subnet-sim00003"
    assert got[NODE1].private_ips and got[NODE1].state == "RUNNING"
    assert (got[NODE1].cpu, got[NODE1].memory_gib) == (4, 8)
    assert got[NODE2].zone == "ap-guangzhou-4"
    assert cloud.describe_instances([InstanceId("ins-zzzzzzzz")]) == []


def test_eni_limits_match_the_table(cloud: TencentCloud) -> None:
    lim = cloud.eni_limits(NODE1)
    assert (lim.enis, lim.ips_per_eni, lim.source, lim.max_pods) == (4, 10, "api", 27)
    assert cloud.eni_limits(NODE2).max_pods == 27
    with pytest.raises(NotFoundError):
        cloud.eni_limits(InstanceId("ins-zzzzzzzz"))


def test_eni_limits_for_added_instance_types(emu: EmulatorHandle, cloud: TencentCloud) -> None:
    for itype, pods in (("SA2.2XLARGE16", 95), ("M5.4XLARGE64", 203), ("SA2.SMALL1", 5)):
        iid = emu.add_instance("subnet-sim00003", itype)
        assert cloud.eni_limits(InstanceId(iid)).max_pods == pods


def test_describe_subnets(cloud: TencentCloud) -> None:
    subs = {s.subnet_id: s for s in cloud.describe_subnets(vpc_id=VPC)}
    assert set(subs) == {"subnet-sim00003", "subnet-sim00004", POD3, POD4}
    assert subs[POD3].zone == "ap-guangzhou-3"
    assert subs[POD3].cidr == "10.0.32.0/20"
    assert subs[POD3].total_ips == 4093 == subs[POD3].available_ips
    assert subs[SubnetId("subnet-sim00003")].available_ips == 252  # the node's primary IP
    assert [s.subnet_id for s in cloud.describe_subnets([POD4])] == [POD4]
    assert cloud.describe_subnets(vpc_id=VpcId("vpc-zzzzzzzz")) == []
    with pytest.raises(NotFoundError):
        cloud.describe_subnets([SubnetId("subnet-zzzzzzzz")])


def test_eni_lifecycle_and_available_count(emu: EmulatorHandle, cloud: TencentCloud) -> None:
    before = _available(cloud, POD3)
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="n1-eni-1", secondary_ip_count=4,
                           tags={"extra": "x"}, instance_id=NODE1)
    assert eni.tags[TAG_INSTANCE_ID] == NODE1
    assert eni.eni_id.startswith("eni-") and len(eni.eni_id) == 12
    assert eni.state == "AVAILABLE" and not eni.primary
    assert eni.mac == eni.mac.lower() and len(eni.mac) == 17
    assert eni.primary_ip and len(eni.secondary_ips) == 4
    assert eni.tags[TAG_CREATOR] == "tke-eni-ipamd"
    assert eni.tags[TAG_CLUSTER_ID] == "cls-sim00001"
    assert eni.tags["extra"] == "x"
    assert _available(cloud, POD3) == before - 5

    cloud.attach_eni(eni.eni_id, NODE1)
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert seen.instance_id == NODE1 and seen.device_index == 1 and seen.state == "AVAILABLE"
    on_node = cloud.describe_enis(instance_id=NODE1)
    assert {e.primary for e in on_node} == {True, False}

    added = cloud.assign_ips(eni.eni_id, count=3)
    assert len(added) == 3
    explicit = cloud.assign_ips(eni.eni_id, addresses=["10.0.47.200"])
    assert explicit == ["10.0.47.200"]
    assert _available(cloud, POD3) == before - 9
    [seen] = cloud.describe_enis(address="10.0.47.200")
    assert seen.eni_id == eni.eni_id

    cloud.unassign_ips(eni.eni_id, [*added, "10.0.47.200"])
    assert _available(cloud, POD3) == before - 5

    cloud.detach_eni(eni.eni_id, NODE1)
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert seen.instance_id is None
    cloud.delete_eni(eni.eni_id)
    assert cloud.describe_enis(eni_ids=[eni.eni_id]) == []
    assert _available(cloud, POD3) == before
    assert emu.leaked_enis() == []


def test_create_with_more_than_ten_ips_batches(cloud: TencentCloud, emu: EmulatorHandle) -> None:
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="big", secondary_ip_count=25)
    assert len(eni.secondary_ips) == 25
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert len(seen.ips) == 26
    calls = emu.emulator.api.calls
    assert calls["CreateNetworkInterface"] == 1
    assert calls["AssignPrivateIpAddresses"] == 2


def test_describe_enis_filters_and_paging(cloud: TencentCloud) -> None:
    made = [cloud.create_eni(vpc_id=VPC, subnet_id=POD4 if i % 2 else POD3, name=f"e{i}",
                             tags={"batch": "b1" if i < 3 else "b2"}) for i in range(6)]
    assert {e.eni_id for e in cloud.describe_enis(tags={"batch": "b1"})} == {
        e.eni_id for e in made[:3]}
    assert len(cloud.describe_enis(subnet_id=POD4)) == 3
    assert len(cloud.describe_enis(subnet_id=POD4, tags={"batch": "b2"})) == 2
    assert len(cloud.describe_enis(vpc_id=VPC)) == 6 + 2  # and the two primary ENIs
    assert len(cloud.describe_enis(tags={TAG_CLUSTER_ID: "cls-sim00001"})) == 6
    ids = [e.eni_id for e in made]
    assert len(cloud.describe_enis(eni_ids=ids, subnet_id=POD3)) == 3  # ids + local filter
    assert cloud.describe_enis(tags={"batch": "nope"}) == []


def test_paging_past_one_page(emu: EmulatorHandle) -> None:
    emu.set_faults(rate_limits=False, task_delay_ms=0)
    fast = cloud_for(emu, task_poll_s=0.001,
                     rate_overrides={"CreateNetworkInterface": 1000, "DescribeVpcTaskResult": 1000})
    for i in range(105):
        fast.create_eni(vpc_id=VPC, subnet_id=POD3, name=f"p{i}")
    assert len(fast.describe_enis(subnet_id=POD3)) == 105
    assert emu.emulator.api.calls["DescribeNetworkInterfaces"] == 2


def test_migrate_ip(cloud: TencentCloud) -> None:
    a = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="a", secondary_ip_count=2)
    b = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="b")
    ip = a.secondary_ips[0]
    cloud.migrate_ip(a.eni_id, b.eni_id, ip)
    [a2] = cloud.describe_enis(eni_ids=[a.eni_id])
    [b2] = cloud.describe_enis(eni_ids=[b.eni_id])
    assert ip not in a2.secondary_ips and ip in b2.secondary_ips
    with pytest.raises(CloudError) as err:
        cloud.migrate_ip(a.eni_id, b.eni_id, str(a.primary_ip))
    assert err.value.code == "InvalidParameterValue"
    c = cloud.create_eni(vpc_id=VPC, subnet_id=POD4, name="c")
    with pytest.raises(CloudError) as err:
        cloud.migrate_ip(a.eni_id, c.eni_id, a.secondary_ips[1])
    assert err.value.code == "UnsupportedOperation"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.attach_eni(EniId("eni-zzzzzzzz"), NODE1), "ResourceNotFound"),
        (lambda c: c.delete_eni(EniId("eni-bad")), "InvalidParameterValue.Malformed"),
        (lambda c: c.create_eni(vpc_id=VPC, subnet_id=SubnetId("subnet-zzzzzzzz"), name="x"),
         "ResourceNotFound"),
        (lambda c: c.create_eni(vpc_id=VPC, subnet_id=POD3, name="x" * 61), None),
        (lambda c: c.unassign_ips(EniId("eni-zzzzzzzz"), ["10.0.32.9"]), "ResourceNotFound"),
    ],
)
def test_bad_requests(cloud: TencentCloud, call: object, code: str | None) -> None:
    if code is None:  # the adapter truncates names to 60 characters
        call(cloud)  # type: ignore[operator]
        return
    with pytest.raises(CloudError) as err:
        call(cloud)  # type: ignore[operator]
    assert err.value.code == code
    assert not err.value.retryable


def test_zone_mismatch_on_attach(cloud: TencentCloud) -> None:
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD4, name="z4")
    with pytest.raises(CloudError) as err:
        cloud.attach_eni(eni.eni_id, NODE1)
    assert err.value.code == "UnsupportedOperation.ZoneMismatch"
    assert "ap-guangzhou-4" in err.value.message


def test_eni_quota_per_instance(cloud: TencentCloud) -> None:
    # S5.LARGE8: 4 ENIs including the primary
    for i in range(3):
        e = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name=f"q{i}")
        cloud.attach_eni(e.eni_id, NODE1)
    extra = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="q-extra")
    with pytest.raises(CloudError) as err:
        cloud.attach_eni(extra.eni_id, NODE1)
    assert err.value.code == "LimitExceeded.NetworkInterfaceLimitExceeded"


def test_ip_quota_per_eni(cloud: TencentCloud) -> None:
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="ipq", secondary_ip_count=9)
    cloud.attach_eni(eni.eni_id, NODE1)  # 10 = the S5.LARGE8 quota
    with pytest.raises(CloudError) as err:
        cloud.assign_ips(eni.eni_id, count=1)
    assert err.value.code == "LimitExceeded.EniPrivateIpLimit"
    too_many = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="ipq2", secondary_ip_count=10)
    with pytest.raises(CloudError) as err:
        cloud.attach_eni(too_many.eni_id, NODE1)
    assert err.value.code == "LimitExceeded.EniPrivateIpLimit"


def test_attach_twice(cloud: TencentCloud) -> None:
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="twice")
    cloud.attach_eni(eni.eni_id, NODE1)
    with pytest.raises(CloudError) as err:
        cloud.attach_eni(eni.eni_id, NODE1)
    assert err.value.code == "UnsupportedOperation.AttachmentAlreadyExists"
    with pytest.raises(CloudError) as err:
        cloud.delete_eni(eni.eni_id)
    assert err.value.code == "UnsupportedOperation.InvalidState"


def test_primary_eni_cannot_go(cloud: TencentCloud) -> None:
    primary = next(e for e in cloud.describe_enis(instance_id=NODE1) if e.primary)
    with pytest.raises(CloudError):
        cloud.detach_eni(primary.eni_id, NODE1)
    with pytest.raises(CloudError):
        cloud.delete_eni(primary.eni_id)


def test_ip_conflicts_and_ranges(cloud: TencentCloud) -> None:
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="conf")
    cloud.assign_ips(eni.eni_id, addresses=["10.0.33.5"])
    cases = [("10.0.33.5", "ResourceInUse"), ("10.0.48.9", "InvalidParameterValue.Range"),
             ("10.0.32.1", "InvalidParameterValue.Reserved"),
             ("10.0.47.255", "InvalidParameterValue.Reserved"),
             ("10.0.33.500", "InvalidParameterValue.Malformed")]
    for addr, code in cases:
        with pytest.raises(CloudError) as err:
            cloud.assign_ips(eni.eni_id, addresses=[addr])
        assert err.value.code == code, addr


def test_subnet_exhaustion() -> None:
    state = {"vpcs": [{"id": "vpc-sim00001", "cidr": "10.9.0.0/16", "subnets": [
        {"id": "subnet-tiny0001", "name": "tiny", "cidr": "10.9.0.0/28", "zone": "ap-guangzhou-3"}],
        "instances": []}]}
    with run_emulator(state=state) as emu:
        cloud = cloud_for(emu)
        sub = SubnetId("subnet-tiny0001")
        assert _available(cloud, sub) == 13
        eni = cloud.create_eni(vpc_id=VPC, subnet_id=sub, name="t", secondary_ip_count=10)
        cloud.assign_ips(eni.eni_id, count=2)
        assert _available(cloud, sub) == 0
        with pytest.raises(CloudError) as err:
            cloud.create_eni(vpc_id=VPC, subnet_id=sub, name="t2")
        assert err.value.code == "ResourceInsufficient.Subnet"
        assert not err.value.retryable


def test_vpc_eni_quota() -> None:
    state = {"vpcs": [{"id": "vpc-sim00001", "cidr": "10.9.0.0/16", "eni_quota": 2, "subnets": [
        {"id": "subnet-sim00001", "cidr": "10.9.1.0/24", "zone": "ap-guangzhou-3"}]}]}
    with run_emulator(state=state) as emu:
        cloud = cloud_for(emu)
        for i in range(2):
            cloud.create_eni(vpc_id=VPC, subnet_id=SubnetId("subnet-sim00001"), name=f"v{i}")
        with pytest.raises(CloudError) as err:
            cloud.create_eni(vpc_id=VPC, subnet_id=SubnetId("subnet-sim00001"), name="v3")
        assert err.value.code == "LimitExceeded.NetworkInterfaceLimitExceeded"


def test_security_group_required_when_configured() -> None:
    state = {"security_groups": [{"id": "sg-sim00001", "name": "default"}],
             "vpcs": [{"id": "vpc-sim00001", "cidr": "10.9.0.0/16",
                       "require_security_group": True,
                       "subnets": [{"id": "subnet-sim00001", "name": "s", "cidr": "10.9.1.0/24",
                                    "zone": "ap-guangzhou-3"}],
                       "instances": [{"id": "ins-sim00009", "subnet": "s"}]}]}
    with run_emulator(state=state) as emu:
        cloud = cloud_for(emu)
        sub = SubnetId("subnet-sim00001")
        bare = cloud.create_eni(vpc_id=VPC, subnet_id=sub, name="nosg")
        with pytest.raises(CloudError) as err:
            cloud.attach_eni(bare.eni_id, InstanceId("ins-sim00009"))
        assert err.value.code == "UnsupportedOperation.NotFoundSecurityGroup"
        cloud2 = cloud_for(emu, security_group_ids=("sg-sim00001",))
        ok = cloud2.create_eni(vpc_id=VPC, subnet_id=sub, name="sg")
        cloud2.attach_eni(ok.eni_id, InstanceId("ins-sim00009"))


def test_metadata_follows_attachments(emu: EmulatorHandle, cloud: TencentCloud) -> None:
    base = emu.metadata_url(NODE1)

    def get(path: str) -> str:
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return str(r.read().decode())

    assert get("instance-id") == NODE1
    assert get("placement/zone") == "ap-guangzhou-3"
    assert get("instance/instance-type") == "S5.LARGE8"
    assert len(get("network/interfaces/macs/").splitlines()) == 1
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="md", secondary_ip_count=2)
    cloud.attach_eni(eni.eni_id, NODE1)
    macs = get("network/interfaces/macs/").splitlines()
    assert f"{eni.mac}/" in macs
    assert get(f"network/interfaces/macs/{eni.mac}/primary-local-ipv4") == eni.primary_ip
    assert get(f"network/interfaces/macs/{eni.mac}/subnet-id") == POD3
    ips = get(f"network/interfaces/macs/{eni.mac}/local-ipv4s/").splitlines()
    assert len(ips) == 3
    assert get(f"network/interfaces/macs/{eni.mac}/local-ipv4s/{eni.primary_ip}/gateway") == (
        "10.0.32.1")
    assert get(f"network/interfaces/macs/{eni.mac}/local-ipv4s/{eni.primary_ip}/subnet-mask") == (
        "255.255.240.0")


def test_instance_that_cannot_hold_enis() -> None:
    state = {"vpcs": [{"id": "vpc-sim00001", "cidr": "10.9.0.0/16", "subnets": [
        {"id": "subnet-sim00001", "name": "s", "cidr": "10.9.1.0/24", "zone": "ap-guangzhou-3"}],
        "instances": [{"id": "ins-sim00009", "type": "S1.SMALL1", "subnet": "s", "enis": 0,
                       "ips_per_eni": 0},
                      {"id": "ins-sim00008", "type": "S1.SMALL1", "subnet": "s", "enis": 1}]}]}
    with run_emulator(state=state) as emu:
        cloud = cloud_for(emu)
        with pytest.raises(CloudError) as err:
            cloud.eni_limits(InstanceId("ins-sim00009"))
        assert err.value.code == "UnsupportedOperation.UnsupportedInstanceFamily"
        assert cloud.eni_limits(InstanceId("ins-sim00008")).max_pods == 0
        eni = cloud.create_eni(vpc_id=VPC, subnet_id=SubnetId("subnet-sim00001"), name="x")
        for iid in ("ins-sim00009", "ins-sim00008"):
            with pytest.raises(CloudError) as err:
                cloud.attach_eni(eni.eni_id, InstanceId(iid))
            assert err.value.code == "UnsupportedOperation.UnsupportedInstanceFamily"


def test_quota_override_for_new_families() -> None:
    state = {"vpcs": [{"id": "vpc-sim00001", "cidr": "10.9.0.0/16", "subnets": [
        {"id": "subnet-sim00001", "name": "s", "cidr": "10.9.1.0/24", "zone": "ap-guangzhou-3"}],
        "instances": [{"id": "ins-sim00009", "type": "SA3.2XLARGE16", "subnet": "s", "enis": 6,
                       "ips_per_eni": 40}]}]}
    with run_emulator(state=state) as emu:
        lim = cloud_for(emu).eni_limits(InstanceId("ins-sim00009"))
        assert (lim.enis, lim.ips_per_eni, lim.max_pods) == (6, 40, 195)


def test_concurrent_lifecycles_leave_nothing_behind(emu: EmulatorHandle) -> None:
    import threading

    cloud = cloud_for(emu)
    errors: list[BaseException] = []
    nodes = [InstanceId(emu.add_instance("subnet-sim00003", "S5.2XLARGE16")) for _ in range(4)]

    def life(node: InstanceId) -> None:
        try:
            for i in range(3):
                eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name=f"{node}-{i}",
                                       secondary_ip_count=3)
                cloud.attach_eni(eni.eni_id, node)
                ips = cloud.assign_ips(eni.eni_id, count=4)
                cloud.unassign_ips(eni.eni_id, ips[:2])
                cloud.detach_eni(eni.eni_id, node)
                cloud.delete_eni(eni.eni_id)
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=life, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert emu.leaked_enis() == []
    assert cloud.describe_subnets([POD3])[0].available_ips == 4093
