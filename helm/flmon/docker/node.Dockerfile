# SuperNode image of the flmon reference deployment. The ClientApp trains in this container
# (a SuperNode subprocess); its code arrives with the run, its dependencies are installed here.
#
# Build from the repository root:
#   docker build -f helm/flmon/docker/node.Dockerfile -t flmon/node:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY flmon ./flmon
RUN pip install ".[flower,keras]" "flwr[dp]>=1.42,<1.43" "scikit-learn>=1.4" && rm -rf /src

RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin flmon
USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp \
    FLWR_HOME=/tmp/.flwr

# 9098: gRPC health. SuperNodes dial out to the SuperLink; nothing dials in.
EXPOSE 9098
ENTRYPOINT ["flower-supernode"]
CMD ["--insecure", "--superlink=flmon-superlink:9093", "--health-server-address=0.0.0.0:9098"]
