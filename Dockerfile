# Dockerfile -- the sluice pool on Debian 12.
#
#   docker build -t sluice .
#   docker run --rm -e SLUICE_REDIS_URL=redis://redis-host:6379 sluice
#
# The build stage compiles with the same Makefile and Debian packages as
# a developer machine and installs into /opt/sluice; the run stage holds
# only the runtime libraries, the binary and the default configuration.
# docker-compose.yml runs it next to a Redis with AOF on.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config libhiredis-dev libevent-dev libjansson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY framework/ framework/
COPY workers/ workers/
RUN make -j"$(nproc)" all && make install PREFIX=/opt/sluice

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libhiredis0.14 libevent-2.1-7 libjansson4 redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin sluice
COPY --from=build /opt/sluice/bin/sluice /usr/local/bin/sluice
COPY config/sluice.json /etc/sluice/sluice.json
USER sluice
# /metrics and /healthz, when the pool listens beyond loopback
# (--metrics 0.0.0.0:9121, as docker-compose.yml does).
EXPOSE 9121
# SIGTERM (docker stop) stops the pool gracefully; give it more than the
# configured shutdown_timeout_ms (docker stop -t, stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["run", "-c", "/etc/sluice/sluice.json", "--metrics", "0.0.0.0:9121"]
