# The operator image: `trigger-operator run` as user 10001 on Python 3.11.
#
# Build it with `make image` (scripts/build-image.sh), not `docker build` alone: the build
# runs without network access and installs only what the build context brings in
# build/image/ (git-ignored), which `make image` fills on the host:
#   build/image/wheels/  the wheels of requirements/runtime.txt and of pip itself
#                        (requirements/installer.txt), every one checked against its hash;
#   build/image/dist/    the operator's own wheel, built from this tree.
# BASE_IMAGE is python:3.11-slim by default, or any image with a python3 3.11 at
# /usr/bin or /usr/local/bin, such as the Debian stand-in of scripts/make-base-image.sh.
#
# The manifests run it with a read-only root filesystem; the only writable paths are the
# volumes they mount (/var/lib/trigger-operator for the SQLite ledger, and /tmp). That is
# why the bytecode stays in the image: with nowhere to write it, every start would compile
# every module again.

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# pip runs from its wheel and is never installed: the venv holds the operator and its
# dependencies and nothing else (no pip, setuptools or wheel).
RUN python3 -m venv --without-pip /opt/venv
# Dependencies first, in their own layer, so that a code change does not reinstall them.
COPY requirements/runtime.txt /tmp/requirements/
COPY build/image/wheels/ /tmp/wheels/
RUN pip=$(echo /tmp/wheels/pip-*.whl)/pip \
 && /opt/venv/bin/python "$pip" install --no-index \
      --find-links /tmp/wheels --require-hashes --only-binary :all: \
      -r /tmp/requirements/runtime.txt \
 # Not used at run time, and the bulk of the image: the Kubernetes client's asyncio
 # twin (kubernetes.aio, about 68 MB; kopf talks to the API itself, and the operator
 # uses the synchronous client) and SQLAlchemy's test suite support.
 && rm -rf /opt/venv/lib/python3.11/site-packages/kubernetes/aio \
           /opt/venv/lib/python3.11/site-packages/sqlalchemy/testing
# The operator itself goes to /opt/app, beside the venv (a .pth file puts it on the
# path), so that the image's last layers hold only what a code change changes.
RUN echo /opt/app >/opt/venv/lib/python3.11/site-packages/trigger-operator-app.pth

FROM build AS app
COPY build/image/dist/ /tmp/dist/
RUN pip=$(echo /tmp/wheels/pip-*.whl)/pip \
 && /opt/venv/bin/python "$pip" install --no-index --no-deps --target /opt/app \
      /tmp/dist/trigger_operator-*.whl \
 && /opt/venv/bin/python -c "import kubernetes, kopf, sqlalchemy, alembic, psycopg" \
 && /opt/app/bin/trigger-operator --version

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
LABEL org.opencontainers.image.base.name=${BASE_IMAGE}
# Numeric ids, so that the kubelet can verify runAsNonRoot; an entry in passwd, so that
# libraries that look the user up (libpq does) find one. Written by hand: the Debian
# stand-in has no useradd.
RUN echo 'trigger-operator:x:10001:10001::/app:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'trigger-operator:x:10001:' >>/etc/group
ENV PATH=/opt/app/bin:/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
COPY --from=app /opt/app /opt/app
# The ledger looks for its Alembic scripts in migrations/ under the working directory
# when the package is installed outside the source tree.
WORKDIR /app
COPY alembic.ini ./
COPY migrations/ migrations/
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["trigger-operator"]
CMD ["run"]
