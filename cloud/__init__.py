"""The Tencent Cloud layer: domain ports (``cloud.ports``), domain models
(``cloud.models``), the adapter over the official SDK and the metadata-service
client. SDK shapes never leave the adapter. (The emulator this layer is tested
against is the test bed's ``vpcsim``, a peer that shares no code with it.)"""
