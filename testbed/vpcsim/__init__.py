"""A local emulator of the Tencent Cloud VPC and CVM API v3 and of the CVM
metadata service (console script ``tke-vpcsim``). It is the cloud fake of the
whole project: tests and the local cluster point the real SDK at it over HTTP.
See docs/cloud.md."""
