# syntax=docker/dockerfile:1
#
# The AI gateway image: `docker build -t ai-gateway:latest .`
# The ENTRYPOINT is `ai-gateway run`: a workload's args are run's flags (manifests/30-deployment.yaml
# gives none), user 65532, read-only root. The Swift image's major.minor is the one the project is
# built and tested with (tests/kube/test_shipped_commands.py compares it with `swift --version`).

# ---- build ----
FROM swift:6.3-jammy AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Resolve dependencies in their own layer so source edits do not refetch them
# (Package.resolved is used when the checkout has one).
COPY Package.* ./
RUN swift package resolve
# Every target the manifest declares must exist, test targets included.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product ai-gateway \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/ai-gateway" /out/ai-gateway

# ---- runtime ----
FROM ubuntu:jammy
# libcurl4: the Kubernetes client and FoundationNetworking; ca-certificates: TLS to providers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4 ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /out/ai-gateway /usr/local/bin/ai-gateway
USER 65532:65532
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/ai-gateway", "run"]
