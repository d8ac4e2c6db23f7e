# Dockerfile -- the sluice pool on Debian 12.
#
#   docker build -t sluice .
#   docker run --rm --stop-timeout 20 -e SLUICE_REDIS_URL=redis://redis-host:6379 sluice
#
# The build stage compiles with the same Makefile and Debian packages as
# a developer machine and installs into /opt/sluice; the run stage holds
# only the runtime libraries, the binary and the configuration.
# docker-compose.yml runs it next to a Redis with AOF on.
#
# Every `sluice` command in the container (the pool, `docker exec ...
# sluice workers`, the health check) finds /etc/sluice/sluice.json by the
# configuration search path; SLUICE_REDIS_URL points them all at Redis.
# Mount another file there, or set SLUICE_CONFIG, to change the rest.

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config libhiredis-dev libevent-dev libssl-dev libjansson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY scripts/embed-lua.sh scripts/
COPY scripts/embed-assets.sh scripts/
COPY framework/ framework/
COPY workers/ workers/
# make install also installs the man page and the bash completion.
COPY man/ man/
COPY completions/ completions/
COPY config/sluice.json config/
RUN make -j"$(nproc)" all && make install PREFIX=/opt/sluice
# The image's configuration listens for /metrics and /healthz on every
# address (the container's loopback is not the host's), so that the pool
# (CMD) and the health check (HEALTHCHECK) read the address from one file.
RUN sed 's/"listen": "127.0.0.1:9121"/"listen": "0.0.0.0:9121"/' config/sluice.json > /opt/sluice/sluice.json \
 && grep -q '"listen": "0.0.0.0:9121"' /opt/sluice/sluice.json

FROM debian:12-slim
# A fixed UID/GID, so that files on mounted volumes and security policies
# (runAsUser, a host's view of the process) name the same user everywhere.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libhiredis0.14 libevent-2.1-7 libevent-openssl-2.1-7 libjansson4 libssl3 ca-certificates redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent \
        --shell /usr/sbin/nologin sluice
COPY --from=build /opt/sluice/bin/sluice /usr/local/bin/sluice
COPY --from=build /opt/sluice/sluice.json /etc/sluice/sluice.json
USER 10001:10001
EXPOSE 9121
# `sluice health` asks the pool's /healthz over loopback: 0 on 200, else 1
# with the reason, which `docker inspect` shows.
HEALTHCHECK --interval=10s --timeout=10s --start-period=15s --retries=3 \
    CMD ["sluice", "health"]
# SIGTERM (docker stop) stops the pool gracefully: children finish the
# entry in hand, then exit; after shutdown_timeout_ms (10 s by default)
# the pool kills them itself and exits 1. Give the runtime's stop timeout
# more than that (docker run --stop-timeout 20, docker stop -t 20,
# stop_grace_period in compose), or its SIGKILL comes first (exit 137).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["run"]
