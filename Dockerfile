# pyacemaker with Quantum ESPRESSO and LAMMPS with the ML-PACE plugin (README: Containers).
# Untested: no container runtime exists where this was written; hadolint lints it in the tests.
# The install steps are the Makefile's (`make install`); this file only bootstraps make.
# Debian 12 with Python 3.11: the system every engine was verified on (DESIGN.md).
FROM python:3.11-slim-bookworm

# make is all the Makefile needs to begin; it installs the rest with apt and pip. Not pinned
# (DL3008): Debian 12's make is fixed by the base image, and exact revisions vanish from the archive.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

# the plugin and pyacemaker's other cache files live in the image, writable by the user
ENV PYACEMAKER_CACHE_DIR=/opt/pyacemaker/cache \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/pyacemaker/.venv/bin:$PATH
WORKDIR /opt/pyacemaker
COPY pyproject.toml constraints.txt Makefile README.md ./
COPY src ./src
COPY scripts ./scripts
COPY examples ./examples
# PIP_EXTRA_INDEX_URL (a build argument) may name an index with CPU builds of torch
ARG PIP_EXTRA_INDEX_URL
RUN make install \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --user-group pyacemaker \
    && chown -R pyacemaker "$PYACEMAKER_CACHE_DIR"

USER 1000:1000
# mount the folder with your config and runs here: docker run -v "$PWD":/work ...
WORKDIR /work
ENTRYPOINT ["pyacemaker"]
CMD ["--help"]
