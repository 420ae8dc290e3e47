"""The narrow seam over the official SDK: ``call(service, action, params) ->
reply dict``. It builds the SDK request model, calls the SDK client method,
and turns SDK exceptions into ``CloudError``. One HTTP round trip, no retry
(the adapter counts and times it); SDK types never leave this module.

TLS: the endpoints' certificates are checked against ``settings.ca_file`` (a
private endpoint's CA, the emulator's over HTTPS), else the SDK's own bundle; a
certificate that bundle does not trust fails with a message naming the setting."""

from __future__ import annotations

import importlib
import json
import os
import threading
from typing import Any, Protocol

from tencentcloud.common import credential as sdk_credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from cloud.credentials import CredentialProvider, Creds
from cloud.errors import CloudError
from cloud.settings import CloudSettings


class Transport(Protocol):
    def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]: ...


#: what a TLS client error says when the peer's certificate is not trusted
UNTRUSTED = "CERTIFICATE_VERIFY_FAILED"


#: the SDK's generated packages, imported on first use: their request/response models
#: cost ~17 MB of RSS (docs/node.md, "Footprint")
SERVICES = {"vpc": "tencentcloud.vpc.v20170312", "cvm": "tencentcloud.cvm.v20170312"}
VERSIONS = {"vpc": "2017-03-12", "cvm": "2017-03-12"}


class SdkTransport:
    """``generic=True``: the SDK's ``CommonClient`` (the same signed request on the
    wire, the reply as the API sent it) instead of the generated clients and
    models, for a process that makes a call or two and must stay small (the
    device plugin)."""

    def __init__(
        self, settings: CloudSettings, credentials: CredentialProvider, *, generic: bool = False
    ) -> None:
        ca = settings.ca_file
        if ca is not None and not (os.path.isfile(ca) and os.access(ca, os.R_OK)):
            raise ValueError(
                f"cloud CA bundle {ca!r}: no readable file there "
                "(flag --cloud-ca-file, env TKE_CLOUD_CA_FILE)"
            )
        self.settings = settings
        self.credentials = credentials
        self.generic = generic
        self._local = threading.local()  # SDK clients are not thread-safe: one per thread

    def _clients(self, creds: Creds) -> dict[str, Any]:
        cached = getattr(self._local, "clients", None)
        if cached is not None and getattr(self._local, "creds", None) == creds:
            return dict(cached)
        cred = sdk_credential.Credential(creds.secret_id, creds.secret_key, creds.token)
        s = self.settings

        def profile(endpoint: str) -> ClientProfile:
            http = HttpProfile(
                protocol=s.protocol,
                endpoint=endpoint,
                reqTimeout=max(1, round(s.request_timeout_s)),
                certification=s.ca_file,  # None: the SDK's own bundle
            )
            return ClientProfile(httpProfile=http)

        endpoints = {"vpc": s.vpc_endpoint, "cvm": s.cvm_endpoint}
        clients: dict[str, Any] = {}
        for service, endpoint in endpoints.items():
            if self.generic:
                from tencentcloud.common.common_client import CommonClient

                clients[service] = CommonClient(
                    service, VERSIONS[service], cred, s.region, profile(endpoint)
                )
            else:
                module = importlib.import_module(f"{SERVICES[service]}.{service}_client")
                client_class = getattr(module, f"{service.capitalize()}Client")
                clients[service] = client_class(cred, s.region, profile(endpoint))
        self._local.clients = clients
        self._local.creds = creds
        return clients

    def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            creds = self.credentials.get()
        except Exception as exc:
            raise CloudError(action, "AuthFailure.NoCredentials", str(exc)) from exc
        client = self._clients(creds)[service]
        try:
            if self.generic:
                answer: dict[str, Any] = client.call_json(action, params)
                return dict(answer.get("Response") or {})
            request = getattr(importlib.import_module(f"{SERVICES[service]}.models"),
                              f"{action}Request")()  # fmt: skip
            request.from_json_string(json.dumps(params))
            reply = getattr(client, action)(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "ClientError")
            message = exc.get_message()
            if isinstance(message, bytes):
                message = message.decode(errors="replace")
            text = str(message)[:500]
            if UNTRUSTED in text:
                text = f"{self._untrusted()}: {text}"
            raise CloudError(action, code, text, exc.get_request_id()) from exc
        data: dict[str, Any] = json.loads(reply.to_json_string())
        return data

    def _untrusted(self) -> str:
        trusted = self.settings.ca_file or "the SDK's own CA bundle"
        return (
            f"the endpoint's TLS certificate is not trusted by {trusted} (give the CA "
            "that signed it with --cloud-ca-file / TKE_CLOUD_CA_FILE)"
        )
