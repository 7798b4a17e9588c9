# Minimal image (completed with the production issue: multi-stage build, worker and scheduler).
FROM python:3.12-slim
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PORT=8000
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN useradd --create-home shop && chown -R shop /app
USER shop
EXPOSE 8000
CMD ["sh", "-c", "uv run --no-dev litestar run --host 0.0.0.0 --port ${PORT}"]
