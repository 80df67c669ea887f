# SuperLink image of the flmon reference deployment. The ServerApp of each run executes in
# this container (a SuperLink subprocess), and the run-submission Job uses it for `flwr run`,
# so it carries flmon with Flower and Keras, and the reference Flower apps (flmon/reference)
# under /app/examples.
#
# Build from the repository root:
#   docker build -f helm/flmon/docker/server.Dockerfile -t flmon/server:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY flmon ./flmon
# Runtime dependency installation is off in the chart: everything the apps import is here
# (the reference apps load their data sets from scikit-learn; the DP variant uses flwr[dp]).
RUN pip install ".[flower,keras]" "flwr[dp]>=1.42,<1.43" "scikit-learn>=1.4" && rm -rf /src

COPY flmon/reference/healthcare /app/examples/healthcare
COPY flmon/reference/fraud /app/examples/fraud

RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin flmon
USER 10001:10001
WORKDIR /tmp
ENV HOME=/tmp \
    FLWR_HOME=/tmp/.flwr

# 9093: SuperLink (Runtime, Control, Fleet); 9098: gRPC health; 9464: flmon exporter.
EXPOSE 9093 9098 9464
ENTRYPOINT ["flower-superlink"]
CMD ["--insecure", "--host=0.0.0.0", "--port=9093", "--health-server-address=0.0.0.0:9098"]
