# Production image: the service only. Point it at the production Redis with RISKGATE_REDIS_URL.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY service ./service
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 riskgate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER riskgate
WORKDIR /home/riskgate
ENV RISKGATE_LISTEN=0.0.0.0:50051
EXPOSE 50051
# Mount the real configuration (admin token hashes, symbols) at /etc/riskgate/riskgate.toml.
ENTRYPOINT ["riskgate", "serve"]
CMD ["--config", "/etc/riskgate/riskgate.toml"]
