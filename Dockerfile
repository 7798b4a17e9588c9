# syntax=docker/dockerfile:1
# Two stages: uv builds the virtual environment; the runtime image gets only that and the code
# (no uv, no compilers), runs as a non-root user, and serves the web app on $PORT by default.
#
#   docker build -t shop-analytics .
#   docker run --env-file .env -p 8000:8000 shop-analytics                 # web (the default command)
#   docker run --env-file .env shop-analytics piccolo migrations forwards all   # migrations
#   docker run --env-file .env shop-analytics taskiq worker app.worker:broker --workers 1 --no-configure-logging --wait-tasks-timeout 30
#   docker run --env-file .env shop-analytics taskiq scheduler app.worker:scheduler --no-configure-logging
# compose.yaml runs all of them against PostgreSQL and Redis.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/local/bin/python3
WORKDIR /app
# dependencies first, in their own layer: rebuilt only when the lock file changes
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --frozen --no-dev --no-install-project

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin shop \
    && mkdir -p /data && chown shop /data
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY piccolo_conf.py pyproject.toml ./
COPY app ./app
COPY piccolo_migrations ./piccolo_migrations
COPY templates ./templates
COPY static ./static
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PORT=8000 \
    DATA_DIR=/data \
    LOG_FORMAT=json
USER shop
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]
# litestar run: uvicorn on 0.0.0.0:$PORT; SIGTERM lets in-flight requests finish
CMD ["litestar", "run", "--host", "0.0.0.0"]
