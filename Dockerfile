# ResoMap worker on Debian's CPU libtorch. For GPU hosts build Dockerfile.cuda.
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ make libtorch-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make shim build

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libtorch1.13 libturbojpeg0 dataset-fashion-mnist ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/worker /src/build/starter /usr/local/bin/
COPY --from=build /src/build/libresomap.so /usr/local/lib/
ENV RESOMAP_LIB=/usr/local/lib/libresomap.so
ENTRYPOINT ["/usr/local/bin/worker"]
