# toxi container image: a drop-in replacement for ghcr.io/shopify/toxiproxy.
#
# Image contract (the same as Toxiproxy 2.12):
#   /toxiproxy      the server (also at /toxi-server)
#   /toxiproxy-cli  the CLI    (also at /toxi)
#   ENTRYPOINT ["/toxiproxy"], CMD ["-host=0.0.0.0"], EXPOSE 8474, ENV LOG_LEVEL=info
# The final image is FROM scratch: statically linked binaries, a few /etc files
# for name resolution, and a non-root numeric user (65532:65532).
#
# Targets:
#   docker build -t toxi .
#       default: compiles inside the `builder` stage (needs the rust base image).
#   docker build --target runtime -t toxi .
#       packages prebuilt static binaries dist/toxi-server and dist/toxi from the
#       build context (made by scripts/static-build.sh); pulls no base image.
#       scripts/build-image.sh does this with buildah, offline.
#
# Build args: VERSION, REVISION, CREATED, SOURCE (OCI labels), RUST_VERSION.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------
# builder: static release binaries from source (normal `docker build` path).
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# glibc static linking (-C target-feature=+crt-static) for the build host's
# triple, then a check that the results need no dynamic loader.
RUN scripts/static-build.sh /out

# ---------------------------------------------------------------------------
# base: everything in the image except the binaries.
FROM scratch AS base
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=https://example.invalid/toxi
# /etc/passwd and /etc/group name the non-root user; /etc/hosts and
# /etc/nsswitch.conf let the resolver find `localhost` when the container
# runtime does not provide its own /etc/hosts (Docker and Kubernetes do).
COPY deploy/docker/rootfs/ /
LABEL org.opencontainers.image.title="toxi" \
      org.opencontainers.image.description="A TCP fault-injection proxy: a drop-in replacement for Toxiproxy (server and CLI)" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="MIT"
ENV LOG_LEVEL=info
EXPOSE 8474
USER 65532:65532
ENTRYPOINT ["/toxiproxy"]
CMD ["-host=0.0.0.0"]

# ---------------------------------------------------------------------------
# runtime: prebuilt static binaries from the build context (offline path).
FROM base AS runtime
COPY dist/toxi-server /toxiproxy
COPY dist/toxi-server /toxi-server
COPY dist/toxi /toxiproxy-cli
COPY dist/toxi /toxi

# ---------------------------------------------------------------------------
# image (default, last stage): binaries compiled by the builder stage.
FROM base AS image
COPY --from=builder /out/toxi-server /toxiproxy
COPY --from=builder /out/toxi-server /toxi-server
COPY --from=builder /out/toxi /toxiproxy-cli
COPY --from=builder /out/toxi /toxi
