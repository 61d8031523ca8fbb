# One image for every process of the platform; Kubernetes picks the process with
# `args: ["-m", "<module>"]` (services.map, services.events, ..., gateway, gateway.edge).
# The base is pinned to a patch release; pin its digest as well when you mirror it.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -m venv /opt/grassroots \
    && /opt/grassroots/bin/pip install --upgrade pip setuptools wheel
COPY services ./services
COPY gateway ./gateway
COPY grassroots ./grassroots
COPY devstack ./devstack
COPY tools ./tools
COPY scenarios ./scenarios
# The generated gRPC stubs (grassroots/) are part of the source tree: no protoc here.
RUN /opt/grassroots/bin/pip install . \
    && /opt/grassroots/bin/python -c "import gateway.app, services.events.wiring" \
    && /opt/grassroots/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/grassroots/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 grassroots \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /data --shell /usr/sbin/nologin grassroots \
    && mkdir -p /data && chown 10001:10001 /data
# Only the virtual environment crosses over: no compilers, no pip cache, no sources.
COPY --from=build /opt/grassroots /opt/grassroots
WORKDIR /data
USER 10001:10001
EXPOSE 8080 50050 50051 50052 50053 50054 50055
# Kubernetes probes each process natively (gRPC health, /healthz); this covers plain
# container runtimes, for the gateway, the image's default process.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["python"]
CMD ["-m", "gateway"]
