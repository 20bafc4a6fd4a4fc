# Stand-in for docker.io/library/rabbitmq:3.13 where no registry is reachable
# (deploy/containers/run.sh): Debian's rabbitmq-server on the local base image.
# Same interface as far as deploy/compose/compose.yaml uses it: config in
# /etc/rabbitmq/rabbitmq.conf, data in /var/lib/rabbitmq, port 5672,
# rabbitmq-diagnostics on the PATH.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server \
 && rm -f /usr/sbin/policy-rc.d && rm -rf /var/lib/apt/lists/*
USER rabbitmq
ENV HOME=/var/lib/rabbitmq
EXPOSE 5672
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
