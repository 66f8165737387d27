# The idp-agent CLI and daemon. Config (idp-agent.yaml, realm-config/, policies/, mappers/) is mounted into
# /work, never baked in; state (the SQLite store, locks, backups) lives in /state.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --no-create-home idp \
 && mkdir -p /state /work \
 && chown idp /state
USER idp
WORKDIR /work
ENV IDP_AGENT_STATE_DIR=/state
# Health and metrics of `idp-agent daemon` (/healthz, /readyz, /metrics).
EXPOSE 9464
ENTRYPOINT ["idp-agent"]
CMD ["daemon", "--config", "idp-agent.yaml", "--listen", "0.0.0.0:9464"]
