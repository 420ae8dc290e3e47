"""The emulator over HTTPS: an unmodified Tencent client (the SDK, or any TLS
client) reaches it by changing only the endpoint and trusting the CA the
emulator wrote; a client that does not trust that CA is refused."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models, vpc_client

from vpcsim.testing import RemoteEmulator, run_emulator, spawn_emulator


def _sdk(emu: RemoteEmulator, endpoint: str, ca: Path | None) -> vpc_client.VpcClient:
    http = HttpProfile(endpoint=endpoint, reqTimeout=10)  # protocol: https, the default
    if ca is not None:
        http.certification = str(ca)
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    return vpc_client.VpcClient(cred, emu.region, ClientProfile(httpProfile=http))


def test_tke_vpcsim_serves_https_to_the_sdk_with_only_endpoint_and_ca(tmp_path: Path) -> None:
    with spawn_emulator(tmp_path, https=True) as emu:
        assert emu.ca_file is not None and emu.https_port is not None
        subnets = _sdk(emu, emu.https_endpoint, emu.ca_file).DescribeSubnets(
            models.DescribeSubnetsRequest()
        )
        assert {s.SubnetId for s in subnets.SubnetSet} == {
            s["subnet_id"] for s in emu.state()["subnets"]
        }
        # the same world over both listeners: an ENI made over HTTPS shows over HTTP
        req = models.CreateNetworkInterfaceRequest()
        req.VpcId, req.SubnetId, req.NetworkInterfaceName = "vpc-sim00001", "subnet-sim00033", "t"
        made = _sdk(emu, emu.https_endpoint, emu.ca_file).CreateNetworkInterface(req)
        eni_id = made.NetworkInterface.NetworkInterfaceId
        assert eni_id in {e["eni_id"] for e in emu.state()["enis"]}
        # "localhost" is in the certificate too
        https = f"localhost:{emu.https_port}"
        assert _sdk(emu, https, emu.ca_file).DescribeVpcs(models.DescribeVpcsRequest()).TotalCount
        # a plain TLS client trusting the CA reaches the metadata service as well
        ctx = ssl.create_default_context(cafile=str(emu.ca_file))
        url = f"https://{emu.https_endpoint}/meta/ins-sim00001/latest/meta-data/instance-id"
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            assert resp.read() == b"ins-sim00001"


def test_a_client_that_does_not_trust_the_ca_is_refused(tmp_path: Path) -> None:
    with spawn_emulator(tmp_path, https=True) as emu:
        with pytest.raises(TencentCloudSDKException) as err:  # the SDK's own CA bundle
            _sdk(emu, emu.https_endpoint, None).DescribeVpcs(models.DescribeVpcsRequest())
        assert "CERTIFICATE_VERIFY_FAILED" in str(err.value), err.value
        # a CA from another start of the emulator is not this one's
        with run_emulator(ca_file=tmp_path / "other-ca.pem") as other:
            assert other.ca_file is not None
            with pytest.raises(TencentCloudSDKException) as err:
                _sdk(emu, emu.https_endpoint, other.ca_file).DescribeVpcs(
                    models.DescribeVpcsRequest()
                )
            assert "CERTIFICATE_VERIFY_FAILED" in str(err.value), err.value
        # plain HTTP on the HTTPS port gets no answer from the API
        http = HttpProfile(protocol="http", endpoint=emu.https_endpoint, reqTimeout=10)
        cred = credential.Credential(emu.secret_id, emu.secret_key)
        client = vpc_client.VpcClient(cred, emu.region, ClientProfile(httpProfile=http))
        with pytest.raises(TencentCloudSDKException):
            client.DescribeVpcs(models.DescribeVpcsRequest())


def test_a_silent_connection_does_not_block_the_https_listener(tmp_path: Path) -> None:
    with spawn_emulator(tmp_path, https=True) as emu:
        assert emu.ca_file is not None and emu.https_port is not None
        with socket.create_connection(("127.0.0.1", emu.https_port), timeout=10):
            # connected, no ClientHello sent: others are still served
            reply = _sdk(emu, emu.https_endpoint, emu.ca_file).DescribeVpcs(
                models.DescribeVpcsRequest()
            )
            assert reply.TotalCount == 1


def test_ca_certificate_covers_the_names_asked_for(tmp_path: Path) -> None:
    with spawn_emulator(
        tmp_path, https=True, extra_args=["--tls-name", "vpcsim.test", "--tls-name", "10.9.8.7"]
    ) as emu:
        assert emu.ca_file is not None and emu.https_port is not None
        pem = ssl.get_server_certificate(
            ("127.0.0.1", emu.https_port), ca_certs=str(emu.ca_file), timeout=10
        )
        cert = x509.load_pem_x509_certificate(pem.encode())
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"localhost", "vpcsim.test"} <= set(alt.get_values_for_type(x509.DNSName))
        ips = {str(ip) for ip in alt.get_values_for_type(x509.IPAddress)}
        assert {"127.0.0.1", "::1", "10.9.8.7"} <= ips
        ca = x509.load_pem_x509_certificate(emu.ca_file.read_bytes())
        assert cert.issuer == ca.subject
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--https-port", "0"], "--https-port needs --ca-cert PATH"),
        (["--ca-cert", "/tmp/x.pem"], "--ca-cert and --https-port-file need --https-port"),
        (
            ["--https-port", "0", "--ca-cert", "/tmp/x.pem", "--tls-name", "a b"],
            "invalid TLS name 'a b'",
        ),
        (
            ["--https-port", "0", "--ca-cert", "/proc/no/such/dir/ca.pem"],
            "/proc/no/such/dir",
        ),
    ],
)
def test_bad_https_flags_exit_2_naming_the_problem(
    tmp_path: Path, args: list[str], message: str
) -> None:
    exe = Path(sys.executable).parent / "tke-vpcsim"
    assert exe.exists(), "tke-vpcsim is not installed: run hack/setup-python.sh"
    proc = subprocess.run(
        [str(exe), "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
