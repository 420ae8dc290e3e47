"""The emulator's wire behaviour: TC3 verification, envelope, Content-Type,
bad input (never a crash or a 500), idempotency by ClientToken."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models, vpc_client

from tests.emulator_client import cloud_for
from vpcsim import signature
from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False}) as handle:
        yield handle


def _profile(emu: EmulatorHandle) -> ClientProfile:
    return ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint,
                                                 reqTimeout=5))


def _common(emu: EmulatorHandle, service: str = "vpc", key: str | None = None,
            secret_id: str | None = None) -> CommonClient:
    cred = credential.Credential(secret_id or emu.secret_id, key or emu.secret_key)
    return CommonClient(service, "2017-03-12", cred, emu.region, profile=_profile(emu))


def _sdk_error(fn: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as err:
        fn()
    return str(err.value.get_code())


def raw(emu: EmulatorHandle, action: str, body: bytes, *, service: str = "vpc",
        key: str | None = None, ts: int | None = None, ctype: str = "application/json",
        headers: dict[str, str] | None = None, version: str = "2017-03-12",
        region: str | None = None) -> tuple[int, str, dict[str, Any]]:
    stamp = int(time.time()) if ts is None else ts
    auth = signature.authorization(emu.secret_id, key or emu.secret_key, service=service,
                                   host=emu.endpoint, content_type=ctype, body=body,
                                   timestamp=stamp)
    hdrs = {"Content-Type": ctype, "Host": emu.endpoint, "X-TC-Action": action,
            "X-TC-Version": version, "X-TC-Region": region or emu.region,
            "X-TC-Timestamp": str(stamp), "Authorization": auth}
    hdrs.update(headers or {})
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("POST", "/", body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        ctype_out = resp.getheader("Content-Type") or ""
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = {}
        return resp.status, ctype_out, parsed
    finally:
        conn.close()


def _code(reply: dict[str, Any]) -> str | None:
    err = reply.get("Response", {}).get("Error")
    return None if err is None else str(err["Code"])


def test_envelope_and_content_type(emu: EmulatorHandle) -> None:
    status, ctype, reply = raw(emu, "DescribeSubnets", b"{}")
    assert status == 200 and ctype == "application/json"
    assert reply["Response"]["TotalCount"] == 4
    assert reply["Response"]["RequestId"]
    status, ctype, reply = raw(emu, "DescribeSubnets", b'{"SubnetIds": ["subnet-zzzzzzzz"]}')
    assert (status, ctype) == (200, "application/json")
    assert _code(reply) == "ResourceNotFound"
    assert reply["Response"]["RequestId"]


def test_sdk_wrong_key(emu: EmulatorHandle) -> None:
    client = _common(emu, key="not-the-key")
    assert _sdk_error(lambda: client.call_json("DescribeSubnets", {})) == (
        "AuthFailure.SignatureFailure")


def test_sdk_unknown_secret_id(emu: EmulatorHandle) -> None:
    client = _common(emu, secret_id="AKIDnobody")
    assert _sdk_error(lambda: client.call_json("DescribeSubnets", {})) == (
        "AuthFailure.SecretIdNotFound")


def test_typed_sdk_client_wrong_key(emu: EmulatorHandle) -> None:
    cred = credential.Credential(emu.secret_id, "wrong")
    client = vpc_client.VpcClient(cred, emu.region, _profile(emu))
    req = models.DescribeNetworkInterfaceLimitRequest()
    req.InstanceId = "ins-sim00001"
    assert _sdk_error(lambda: client.DescribeNetworkInterfaceLimit(req)) == (
        "AuthFailure.SignatureFailure")


@pytest.mark.parametrize(("skew", "code"), [(-301, "AuthFailure.SignatureExpire"),
                                            (400, "AuthFailure.SignatureExpire"),
                                            (-200, None)])
def test_stale_timestamp(emu: EmulatorHandle, skew: int, code: str | None) -> None:
    _, _, reply = raw(emu, "DescribeSubnets", b"{}", ts=int(time.time()) + skew)
    assert _code(reply) == code


def test_tampered_body(emu: EmulatorHandle) -> None:
    body = b"{}"
    stamp = int(time.time())
    auth = signature.authorization(emu.secret_id, emu.secret_key, service="vpc",
                                   host=emu.endpoint, content_type="application/json",
                                   body=body, timestamp=stamp)
    _, _, reply = raw(emu, "DescribeSubnets", b'{"Limit": "1"}', ts=stamp,
                      headers={"Authorization": auth})
    assert _code(reply) == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Authorization": ""}, "AuthFailure.InvalidAuthorization"),
        ({"Authorization": "Bearer xyz"}, "AuthFailure.InvalidAuthorization"),
        ({"X-TC-Action": ""}, "MissingParameter"),
        ({"X-TC-Timestamp": "soon"}, "InvalidParameter"),
    ],
)
def test_bad_headers(emu: EmulatorHandle, headers: dict[str, str], code: str) -> None:
    status, ctype, reply = raw(emu, "DescribeSubnets", b"{}", headers=headers)
    assert (status, ctype) == (200, "application/json")
    assert _code(reply) == code


def test_wrong_version_region_and_service(emu: EmulatorHandle) -> None:
    assert _code(raw(emu, "DescribeSubnets", b"{}", version="2020-01-01")[2]) == "NoSuchVersion"
    assert _code(raw(emu, "DescribeSubnets", b"{}", region="ap-beijing")[2]) == (
        "UnsupportedRegion")
    # a VPC action signed for cvm is unknown to cvm
    assert _code(raw(emu, "DescribeSubnets", b"{}", service="cvm")[2]) == "InvalidAction"
    assert _code(raw(emu, "DescribeInstances", b"{}", service="cvm")[2]) is None


@pytest.mark.parametrize(
    ("action", "body", "code"),
    [
        ("DescribeSubnets", b"{not json", "InvalidParameter"),
        ("DescribeSubnets", b"[1, 2]", "InvalidParameter"),
        ("DescribeSubnets", b"\xff\xfe", "InvalidParameter"),
        ("NoSuchThing", b"{}", "InvalidAction"),
        ("DescribeSubnets", b'{"Bogus": 1}', "UnknownParameter"),
        ("DescribeSubnets", b'{"SubnetIds": "subnet-sim00003"}', "InvalidParameter"),
        ("DescribeSubnets", b'{"SubnetIds": ["nope"]}', "InvalidParameterValue.Malformed"),
        ("DescribeSubnets", b'{"Limit": "ten"}', "InvalidParameterValue"),
        ("DescribeSubnets", b'{"Limit": "1000"}', "InvalidParameterValue.Range"),
        ("DescribeSubnets", b'{"SubnetIds": [], "Filters": []}', "InvalidParameter.Coexist"),
        ("DescribeSubnets", b'{"Filters": [{"Name": "colour", "Values": ["red"]}]}',
         "InvalidParameter.FilterNotSupported"),
        ("DescribeSubnets", b'{"Filters": [{"Name": "zone", "Values": "x"}]}',
         "InvalidParameter"),
        ("DescribeSubnets", b'{"Filters": [7]}', "InvalidParameter"),
        ("DescribeNetworkInterfaces", b'{"Limit": "10"}', "InvalidParameter"),
        ("DescribeNetworkInterfaces", b'{"Offset": -1}', "InvalidParameterValue.Range"),
        ("DescribeNetworkInterfaces", b'{"Limit": true}', "InvalidParameter"),
        ("DescribeNetworkInterfaceLimit", b"{}", "MissingParameter"),
        ("DescribeNetworkInterfaceLimit", b'{"InstanceId": 5}', "InvalidParameter"),
        ("DescribeNetworkInterfaceLimit", b'{"InstanceId": "vm-1"}',
         "InvalidParameterValue.Malformed"),
        ("DescribeNetworkInterfaceLimit", b'{"InstanceId": "ins-zzzzzzzz"}', "ResourceNotFound"),
        ("DescribeVpcTaskResult", b'{"TaskId": "nope"}', "ResourceNotFound"),
        ("DescribeVpcTaskResult", b"{}", "MissingParameter"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033"}',
         "MissingParameter"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "x", "SecondaryPrivateIpAddressCount": 11}',
         "InvalidParameterValue.Range"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "x", "SecondaryPrivateIpAddressCount": "2"}',
         "InvalidParameter"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "' + b"n" * 61 + b'"}', "InvalidParameterValue.TooLong"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "x", "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.32.5"},'
         b'{"PrivateIpAddress": "10.0.32.5"}]}', "InvalidParameterValue.Duplicate"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "x", "Tags": [{"Value": "v"}]}', "InvalidParameter"),
        ("CreateNetworkInterface", b'{"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", '
         b'"NetworkInterfaceName": "x", "PrivateIpAddresses": ['
         + b",".join(b'{"PrivateIpAddress": "10.0.40.%d"}' % i for i in range(2, 13)) + b"]}",
         "InvalidParameterValue.LimitExceeded"),
        ("AssignPrivateIpAddresses", b'{"NetworkInterfaceId": "eni-zzzzzzzz", '
         b'"SecondaryPrivateIpAddressCount": 1}', "ResourceNotFound"),
        ("AssignPrivateIpAddresses", b'{"NetworkInterfaceId": "eni-zzzzzzzz"}',
         "MissingParameter"),
        ("UnassignPrivateIpAddresses", b'{"NetworkInterfaceId": "eni-zzzzzzzz", '
         b'"PrivateIpAddresses": {}}', "InvalidParameter"),
        ("MigratePrivateIpAddress", b'{"SourceNetworkInterfaceId": "eni-zzzzzzzz"}',
         "MissingParameter"),
        ("AttachNetworkInterface", b'{"NetworkInterfaceId": "eni-zzzzzzzz", '
         b'"InstanceId": "ins-sim00001", "ClientToken": 5}', "InvalidParameter"),
    ],
)
def test_bad_input_gets_api_codes(emu: EmulatorHandle, action: str, body: bytes,
                                  code: str) -> None:
    status, ctype, reply = raw(emu, action, body)
    assert (status, ctype) == (200, "application/json")
    assert _code(reply) == code, reply
    assert reply["Response"]["RequestId"]


def test_assign_needs_exactly_one_way(emu: EmulatorHandle) -> None:
    client = _common(emu)
    eni = client.call_json("CreateNetworkInterface", {
        "VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033", "NetworkInterfaceName": "w"})
    eni_id = eni["Response"]["NetworkInterface"]["NetworkInterfaceId"]
    emu.admin("POST", "/_admin/tasks/finish", {})
    assert _sdk_error(lambda: client.call_json("AssignPrivateIpAddresses", {
        "NetworkInterfaceId": eni_id})) == "MissingParameter"
    assert _sdk_error(lambda: client.call_json("AssignPrivateIpAddresses", {
        "NetworkInterfaceId": eni_id, "SecondaryPrivateIpAddressCount": 1,
        "PrivateIpAddresses": [{"PrivateIpAddress": "10.0.40.40"}]})) == "InvalidParameter.Coexist"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"InstanceIds": ["vm-1"]}', "InvalidInstanceId.Malformed"),
        (b'{"InstanceIds": "ins-sim00001"}', "InvalidParameter"),
        (b'{"InstanceIds": ["ins-sim00001"], "Filters": []}', "InvalidParameter"),
        (b'{"Filters": [{"Name": "flavour", "Values": ["x"]}]}',
         "InvalidParameter.FilterNotSupported"),
        (b'{"Limit": 101}', "InvalidParameterValue.Range"),
        (b'{"Offset": "0"}', "InvalidParameter"),
        (b'{"InstanceIds": ["ins-zzzzzzzz"]}', None),
    ],
)
def test_cvm_bad_input(emu: EmulatorHandle, body: bytes, code: str | None) -> None:
    status, ctype, reply = raw(emu, "DescribeInstances", body, service="cvm")
    assert (status, ctype) == (200, "application/json")
    assert _code(reply) == code, reply


def test_cvm_filters_via_sdk(emu: EmulatorHandle) -> None:
    client = _common(emu, service="cvm")
    reply = client.call_json("DescribeInstances", {"Filters": [
        {"Name": "zone", "Values": ["ap-guangzhou-4"]}]})["Response"]
    assert [i["InstanceId"] for i in reply["InstanceSet"]] == ["ins-sim00002"]
    assert reply["InstanceSet"][0]["Placement"]["Zone"] == "ap-guangzhou-4"


def test_wrong_content_type(emu: EmulatorHandle) -> None:
    status, ctype, reply = raw(emu, "DescribeSubnets", b"{}", ctype="text/plain")
    assert (status, ctype) == (200, "application/json")
    assert _code(reply) == "InvalidParameter"


def test_non_api_paths(emu: EmulatorHandle) -> None:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        conn.request("POST", "/elsewhere", body=b"{}")
        assert conn.getresponse().status == 404
    finally:
        conn.close()


def test_mac_upper_case_on_the_wire(emu: EmulatorHandle) -> None:
    reply = _common(emu).call_json("DescribeNetworkInterfaces", {})
    macs = [e["MacAddress"] for e in reply["Response"]["NetworkInterfaceSet"]]
    assert macs and all(m == m.upper() for m in macs)


def test_ids_look_real(emu: EmulatorHandle) -> None:
    state = emu.state()
    import re
    for e in state["enis"]:
        assert re.fullmatch(r"eni-[a-z0-9]{8}", e["eni_id"])
    for i in state["instances"]:
        assert re.fullmatch(r"ins-[a-z0-9]{8}", i["instance_id"])


def test_idempotent_create(emu: EmulatorHandle) -> None:
    client = _common(emu)
    params = {"VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033",
              "NetworkInterfaceName": "idem", "SecondaryPrivateIpAddressCount": 2,
              "ClientToken": "tok-create-1"}
    first = client.call_json("CreateNetworkInterface", params)["Response"]
    again = client.call_json("CreateNetworkInterface", params)["Response"]
    assert first["NetworkInterface"]["NetworkInterfaceId"] == (
        again["NetworkInterface"]["NetworkInterfaceId"])
    assert first["RequestId"] == again["RequestId"]  # = the task id
    same_name = [e for e in emu.state()["enis"] if e["name"] == "idem"]
    assert len(same_name) == 1
    changed = {**params, "SecondaryPrivateIpAddressCount": 3}
    assert _sdk_error(lambda: client.call_json("CreateNetworkInterface", changed)) == (
        "UnsupportedOperation.IdempotentParameterMismatch")
    other = client.call_json("CreateNetworkInterface", {**params, "ClientToken": "tok-create-2"})
    assert other["Response"]["NetworkInterface"]["NetworkInterfaceId"] != (
        first["NetworkInterface"]["NetworkInterfaceId"])


def test_idempotent_attach_and_assign_via_adapter(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id="vpc-sim00001", subnet_id="subnet-sim00033",  # type: ignore[arg-type]
                           name="idem2", client_token="tok-c3")
    again = cloud.create_eni(vpc_id="vpc-sim00001", subnet_id="subnet-sim00033",  # type: ignore[arg-type]
                             name="idem2", client_token="tok-c3")
    assert again.eni_id == eni.eni_id
    cloud.attach_eni(eni.eni_id, "ins-sim00001", client_token="tok-a1")  # type: ignore[arg-type]
    cloud.attach_eni(eni.eni_id, "ins-sim00001", client_token="tok-a1")  # type: ignore[arg-type]
    ips = cloud.assign_ips(eni.eni_id, count=2, client_token="tok-i1")
    assert cloud.assign_ips(eni.eni_id, count=2, client_token="tok-i1") == ips
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert len(seen.ips) == 3
    from cloud.errors import CloudError
    with pytest.raises(CloudError) as err:
        cloud.assign_ips(eni.eni_id, count=3, client_token="tok-i1")
    assert err.value.code == "UnsupportedOperation.IdempotentParameterMismatch"
    cloud.detach_eni(eni.eni_id, "ins-sim00001")  # type: ignore[arg-type]
    cloud.delete_eni(eni.eni_id)
