# syntax=docker/dockerfile:1
#
# FlowGate backend (REST API and OpAMP endpoints; there is no web UI yet).
# Build from the repository root:
#
#   docker build -f deploy/backend.Dockerfile -t flowgate-backend .
#
# deploy/backend.Dockerfile.dockerignore keeps the context to what the build needs.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY backend/ backend/
RUN python -m venv /opt/flowgate \
    && /opt/flowgate/bin/pip install --no-cache-dir ./backend

FROM python:${PYTHON_VERSION}-slim

ENV PATH=/opt/flowgate/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOWGATE_HOST=0.0.0.0 \
    FLOWGATE_PORT=8000 \
    FLOWGATE_DATA_DIR=/var/lib/flowgate \
    FLOWGATE_ENVIRONMENT=production \
    FLOWGATE_MIGRATE_ON_START=true

RUN groupadd --system --gid 10001 flowgate \
    && useradd --system --uid 10001 --gid flowgate --home-dir /var/lib/flowgate --no-create-home \
        --shell /usr/sbin/nologin flowgate \
    && install -d -o flowgate -g flowgate -m 0700 /var/lib/flowgate

COPY --from=build /opt/flowgate /opt/flowgate

USER 10001:10001
WORKDIR /var/lib/flowgate
VOLUME ["/var/lib/flowgate"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"]

# Production: FLOWGATE_SECRET_KEY and FLOWGATE_PUBLIC_URL must be given (the server refuses to
# start without them, saying so). Migrations run before serving, under a database lock, so
# replicas starting together are safe; for rolling upgrades set FLOWGATE_MIGRATE_ON_START=false
# and run `flowgate db upgrade` once per release instead (docs/deploy.md, "Scaling").
CMD ["/bin/sh", "-c", "if [ \"$FLOWGATE_MIGRATE_ON_START\" = true ]; then flowgate db upgrade || exit 1; fi; exec flowgate serve --host 0.0.0.0 --port 8000"]
