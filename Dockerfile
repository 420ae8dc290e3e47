# One image for every component of tke-vpc-cni (console scripts from setup.cfg):
#   tke-eni-agent, tke-eni-device-plugin   DaemonSet kube-system/tke-eni-agent
#   tke-eni-ipamd                          Deployment kube-system/tke-eni-ipamd
#   tke-eni-scheduler-extender             Deployment kube-system/tke-eni-ip-scheduler
# Each manifest sets `command:` to its script; CMD below only prints help.
#
#   docker build -t <registry>/tke-vpc-cni:<tag> .
#
# (tests/integration/test_deploy_manifests.py checks this file: base image,
# COPY sources, every package of setup.cfg copied, console scripts.)

# --- build: a venv with the package and its generated gRPC stubs -------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tke-vpc-cni \
 && /opt/tke-vpc-cni/bin/pip install --upgrade pip setuptools wheel
COPY pyproject.toml setup.cfg README.md ./
COPY core/ core/
COPY cloud/ cloud/
COPY device_plugin/ device_plugin/
COPY cni/ cni/
COPY ipamd/ ipamd/
COPY scheduler_extender/ scheduler_extender/
COPY localcluster/ localcluster/
COPY localnode/ localnode/
COPY localrun/ localrun/
COPY protos/ protos/
# The stubs are generated, never committed (protos/build.py). Order matters:
# install the package first so that grpcio-tools is resolved together with
# setup.cfg's protobuf range (a newer grpcio-tools alone generates code for a
# protobuf the package then downgrades: "incompatible Protobuf Gencode/Runtime
# versions"), then generate the stubs, then reinstall the package with them
# (not editable, so the stubs are copied into site-packages).
RUN /opt/tke-vpc-cni/bin/pip install . \
 && /opt/tke-vpc-cni/bin/python -m protos.build --force \
 && /opt/tke-vpc-cni/bin/pip install --no-deps --force-reinstall . \
 && cd / && /opt/tke-vpc-cni/bin/python -c "import protos.v1beta1.api_pb2_grpc, cni.agent.cli, device_plugin.cli, ipamd.cli, scheduler_extender.cli"

# --- runtime -----------------------------------------------------------------
FROM python:3.11-slim
LABEL org.opencontainers.image.title="tke-vpc-cni" \
      org.opencontainers.image.description="Open Python implementation of TKE VPC-CNI (route-ENI mode)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/tke-vpc-cni /opt/tke-vpc-cni
ENV PATH=/opt/tke-vpc-cni/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Non-root by default (ipamd, the extender). The DaemonSet runs its two
# containers as root on purpose (deploy/agent/daemonset.yaml).
USER 65532:65532
CMD ["tke-eni-agent", "--help"]
