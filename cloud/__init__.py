"""The Tencent Cloud layer: domain ports (``cloud.ports``), domain models
(``cloud.models``), the adapter over the official SDK, the metadata-service
client, and the local emulator of the VPC/CVM API and metadata service
(``cloud.emulator``). SDK shapes never leave the adapter."""
