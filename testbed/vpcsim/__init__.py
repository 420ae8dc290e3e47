"""A local emulator of the Tencent Cloud VPC and CVM API v3 and of the CVM
metadata service (console script ``tke-vpcsim``). It is the cloud fake of the
whole project: tests and the local cluster point the real SDK at it over HTTP;
with ``--https-port`` any Tencent client reaches it over HTTPS by changing only
its endpoint and trusting the CA the emulator writes. It is the cloud's peer and
shares no code with the client (its signature check, rate limits, quotas and
address rules are its own). See docs/cloud.md."""
