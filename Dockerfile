# The operator image: `trigger-operator run` as a non-root user on python:3.11-slim.
#   docker build -t REGISTRY/trigger-operator:TAG .
# The manifests run it with a read-only root filesystem; the only writable paths are the
# volumes they mount (/var/lib/trigger-operator for the SQLite ledger, and /tmp).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p operator/trigger_operator \
 && touch operator/trigger_operator/__init__.py \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y trigger-operator
COPY operator/ operator/
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/trigger-operator --version

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 trigger-operator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin trigger-operator
COPY --from=build /opt/venv /opt/venv
# The ledger looks for its Alembic scripts in migrations/ under the working directory
# when the package is installed outside the source tree.
WORKDIR /app
COPY alembic.ini ./
COPY migrations/ migrations/
# Numeric, so that the kubelet can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["trigger-operator"]
CMD ["run"]
