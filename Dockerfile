# One image for every component of tke-vpc-cni (console scripts from setup.cfg):
#   tke-eni-agent                          DaemonSet kube-system/tke-eni-agent (--device-plugin=true:
#                                          the device plugin in the same process)
#   tke-eni-device-plugin                  the device plugin on its own (docs/device-plugin.md)
#   tke-eni-ipamd                          Deployment kube-system/tke-eni-ipamd
#   tke-eni-scheduler-extender             Deployment kube-system/tke-eni-ip-scheduler
#   tke-eni-ip-webhook                     Deployment kube-system/tke-eni-ip-webhook (+ its certs Job)
# Each manifest sets `command:` to its script; CMD below only prints help.
#
#   docker build -t <registry>/tke-vpc-cni:<tag> .
#   hack/image/build.sh      (buildah, on a base made from Debian's packages: docs/image.md)
#
# BASE_IMAGE: any Debian-like image with python3 >= 3.11 and its venv module. The
# default is the usual public one; hack/image/build.sh passes a local bookworm root
# made by debootstrap (localhost/tke-base:bookworm).
#
# (tests/unit/test_deploy_dockerfile.py checks this file: base image, COPY sources,
# every component package copied, no test bed, console scripts.)
ARG BASE_IMAGE=python:3.11-slim

# --- build: a venv with the package ------------------------------------------
FROM ${BASE_IMAGE} AS build
# A CA bundle for pip, only where the package registry is reached through a TLS-
# inspecting proxy (hack/image/build.sh mounts the host's bundle for the RUN steps
# and passes its path); it stays out of the image.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/tke-vpc-cni
# The dependencies first, from the metadata alone (no package is found yet; an empty
# README stands in for the long description): this layer is reused until setup.cfg
# or pyproject.toml change.
COPY pyproject.toml setup.cfg ./
RUN touch README.md \
 && /opt/tke-vpc-cni/bin/pip install . \
 && /opt/tke-vpc-cni/bin/pip uninstall -y tke-vpc-cni
# The components and their committed gRPC stubs (protos/build.py). The test bed
# (testbed/: emulator, local control plane, nodes, local run) is a distribution of
# its own and is never copied.
COPY README.md ./
COPY core/ core/
COPY kit/ kit/
COPY cloud/ cloud/
COPY device_plugin/ device_plugin/
COPY cni/ cni/
COPY ipamd/ ipamd/
COPY scheduler_extender/ scheduler_extender/
COPY webhook/ webhook/
COPY protos/ protos/
# Then: no installer left in the venv, and every console script
# (and the device plugin's stubs) starts.
RUN /opt/tke-vpc-cni/bin/pip install --no-deps . \
 && /opt/tke-vpc-cni/bin/pip uninstall -y -q setuptools pip \
 && cd / && /opt/tke-vpc-cni/bin/python -c "import protos.v1beta1.api_pb2_grpc" \
 && for s in /opt/tke-vpc-cni/bin/tke-*; do "$s" --help > /dev/null || exit 1; done

# --- runtime -----------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="tke-vpc-cni" \
      org.opencontainers.image.description="Open Python implementation of TKE VPC-CNI (route-ENI mode)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/tke-vpc-cni /opt/tke-vpc-cni
ENV PATH=/opt/tke-vpc-cni/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Non-root by default: nobody (65534), the user deploy/ gives ipamd and the extender
# (runAsUser: 65534). The DaemonSet runs its two containers as root on purpose
# (deploy/agent/daemonset.yaml).
USER 65534:65534
CMD ["tke-eni-agent", "--help"]
