# The idp-agent CLI and daemon. Config (realm-config/, policies/, mappers/) is mounted, never baked in.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent ./agent
RUN pip install --no-cache-dir . && useradd --system --uid 10001 idp
USER idp
WORKDIR /work
ENTRYPOINT ["idp-agent"]
CMD ["--help"]
