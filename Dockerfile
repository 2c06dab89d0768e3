# ResoMap worker (and starter) on Debian's CPU libtorch. For GPU hosts build
# Dockerfile.cuda. The same file builds on the upstream images (the
# defaults) and, with no registry, on the images `make images` makes here:
#   --build-arg BUILDER=resomap/go:1.26.8 --build-arg BASE=resomap/base:bookworm
ARG BUILDER=golang:1.26-bookworm
ARG BASE=debian:bookworm-slim

FROM ${BUILDER} AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ make libtorch-dev >/dev/null \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ARG GOPROXY=https://proxy.golang.org,direct
ARG GOFLAGS=
ENV CGO_ENABLED=0 GOPROXY=${GOPROXY} GOFLAGS=${GOFLAGS}
# Modules first: a change of code alone reuses this layer.
COPY go.mod go.sum ./
RUN go mod download
COPY torch/csrc torch/csrc
COPY scripts/build-bridge.sh scripts/
RUN bash scripts/build-bridge.sh /out
COPY . .
RUN go build -trimpath -o /out/ ./worker ./starter ./cmd/uigate

FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libtorch1.13 libturbojpeg0 dataset-fashion-mnist ca-certificates >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/worker /out/starter /out/uigate /usr/local/bin/
COPY --from=build /out/libresomap.so /usr/local/lib/
ENV RESOMAP_LIB=/usr/local/lib/libresomap.so
ENTRYPOINT ["/usr/local/bin/worker"]
