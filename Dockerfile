# syntax=docker/dockerfile:1
# riskgate: `riskgate serve` (a gate shard) or `riskgate monitor`, one process per container.
# With no arguments it runs the one-command demo: the bundled sample configuration and an
# embedded Redis whose data lives in /var/lib/riskgate/data (writable by the non-root user).
# Production: `serve --config /etc/riskgate/riskgate.toml` with RISKGATE_REDIS_URL set; see
# the README (Operate, Deploy), deploy/compose/ and deploy/k8s/. Versions: constraints.txt.

FROM python:3.11-slim AS build
# A C compiler for mypyc, which compiles the hot path (setup.py); the final stage needs none.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY proto ./proto
COPY service ./service
# Wheels of riskgate and of every runtime dependency, at the versions constraints.txt pins.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/riskgate \
    RISKGATE_DATA_DIR=/var/lib/riskgate/data \
    RISKGATE_LISTEN=0.0.0.0:50051
# Installed from the build stage's wheels only (no index): exactly the pinned set.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=constraints.txt,target=/tmp/constraints.txt \
    pip install --no-cache-dir --no-index --find-links=/wheels -c /tmp/constraints.txt /wheels/riskgate-*.whl \
    && riskgate --help > /dev/null \
    && python -c "import sys, riskgate.compiled as c; sys.exit(c.compiled_modules() != list(c.HOT_PATH))"
RUN groupadd --system --gid 10001 riskgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/riskgate --shell /usr/sbin/nologin riskgate \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/riskgate /var/lib/riskgate/data \
    && install -d -o root -g 10001 -m 0750 /etc/riskgate
USER 10001:10001
WORKDIR /var/lib/riskgate
# 50051 orders (PreTradeRisk, health), 50052 operators (RiskAdmin; loopback unless configured
# otherwise), 9464 Prometheus /metrics (the monitor: 50053 and 9465).
EXPOSE 50051 50052 9464
# SERVING only: NOT_SERVING while loading, failing closed (Redis lost) or shutting down.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["riskgate", "health", "--target", "127.0.0.1:50051"]
# SIGTERM: NOT_SERVING, in-flight calls finished, write-behind flushed, exit within 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["riskgate"]
CMD ["serve"]
