#!/usr/bin/env bash
# Builds every image of the team stack from what this machine can reach —
# Debian's package mirror and the Go module proxy — with no image registry:
# a Debian 12 base made by debootstrap and `docker import`, then PostgreSQL
# (Debian's), the Temporal server with its SQL schema tool and schema, its
# Web UI, versitygw, and the worker (Dockerfile, on the same base). What was
# built before is reused: the base rootfs and image, Go's build cache, and
# docker's layer cache. docker-compose.local.yml runs them. Needs root
# (debootstrap) the first time. Usage: build-images.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The Temporal server, its SQL tool and the Web UI are built from the
# modules the Temporal CLI (install-tools.sh's version) embeds, at the CLI's
# own versions: the versions match, and Go's build cache, which built the
# CLI, has compiled nearly all of them already.
TEMPORAL_CLI_VERSION=$(sed -n 's/^TEMPORAL_VERSION=//p' scripts/install-tools.sh)
TAG=${RESOMAP_IMAGE_TAG:-local}
CACHE=${RESOMAP_IMAGE_CACHE:-/var/cache/resomap/images}
STAGE=build/images
GOBIN=${GOBIN:-$(go env GOPATH)/bin}

# The mirror this machine's apt uses (deb822 or one-line sources).
mirror() {
  [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
took() { echo "images: $1 ($((SECONDS - $2)) s)"; }

# The certificate authorities this machine trusts beyond Debian's (a lab's
# or an egress proxy's): images trust them too, or nothing in them could
# reach the Go module proxy through it.
CA_DIR=/usr/local/share/ca-certificates
ca_sum() { cat "$CA_DIR"/*.crt 2>/dev/null | sha256sum | cut -c1-16; }

base_image() {
  local t0=$SECONDS img=resomap/base:bookworm want
  want=$(ca_sum)
  [ "$(docker image inspect -f '{{index .Config.Labels "resomap.cas"}}' "$img" 2>/dev/null)" = "$want" ] && return
  [ "$(id -u)" -eq 0 ] || { echo "images: building the base needs root (debootstrap)" >&2; exit 1; }
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  local root=$CACHE/bookworm m
  m=$(mirror)
  if [ ! -f "$root/.resomap-ready" ]; then
    rm -rf --one-file-system "$root" && mkdir -p "$root"
    debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$root" "$m" >/dev/null
    echo "deb $m bookworm main" >"$root/etc/apt/sources.list"
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    touch "$root/.resomap-ready"
  fi
  rm -f "$root$CA_DIR"/*.crt
  cp "$CA_DIR"/*.crt "$root$CA_DIR/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null 2>&1
  tar -C "$root" --exclude=./.resomap-ready -c . |
    docker import -c 'CMD ["bash"]' -c 'ENV LANG=C.UTF-8' -c "LABEL resomap.cas=$want" \
      -m "debootstrap bookworm from $m" - "$img" >/dev/null
  took "$img from debootstrap ($m)" $t0
}

# go_image: the base with this machine's Go, the worker's build stage.
go_image() {
  local t0=$SECONDS v tree
  v=$(go env GOVERSION)
  tree=resomap/go-tree:${v#go}
  GO_IMAGE=resomap/go:${v#go}
  docker image inspect "$tree" >/dev/null 2>&1 ||
    tar -C "$(go env GOROOT)/.." --exclude='go*/pkg/obj' --transform 's,^[^/]*,go,' -c "$(basename "$(go env GOROOT)")" |
      docker import - "$tree" >/dev/null
  printf 'FROM %s AS tree\nFROM resomap/base:bookworm\nCOPY --from=tree /go /usr/local/go\nENV PATH=/usr/local/go/bin:$PATH\n' "$tree" |
    quiet docker build -q -t "$GO_IMAGE" -
  took "$GO_IMAGE" $t0
}

# quiet: the legacy builder's deprecation notice is noise here (no buildx).
quiet() { "$@" 2> >(grep -vE 'DEPRECATED|buildx|docs.docker.com/go/buildx|^\s*$' >&2) >/dev/null; }

# gobuild OUT PKG: a program of the CLI's module graph, built here.
GOMOD=$STAGE/temporal-modules
gobuild() { (cd "$GOMOD" && GOFLAGS="-mod=mod -buildvcs=false" go build -o "$OLDPWD/$1" "$2"); }
moddir() { (cd "$GOMOD" && GOFLAGS="-mod=mod -buildvcs=false" go list -m -f '{{.Dir}}' "$1"); }

build() { # build NAME CONTEXT [docker build args]
  local t0=$SECONDS name=$1 ctx=$2
  shift 2
  quiet docker build -q -t "resomap/$name:$TAG" "$@" "$ctx"
  took "resomap/$name:$TAG" $t0
}

base_image
go_image
mkdir -p "$GOMOD"
printf 'module resomap.local/stack-images\n\ngo 1.24\n\nrequire github.com/temporalio/cli %s\n' "$TEMPORAL_CLI_VERSION" >"$GOMOD/go.mod"

# PostgreSQL: Debian's.
build postgres deploy/postgres

# Temporal: the server, its SQL tool and schema from the server's module,
# and the CLI (namespace setup, health checks).
t=$STAGE/temporal
rm -rf "$t" && mkdir -p "$t"
gobuild "$t/server" go.temporal.io/server/cmd/server
gobuild "$t/sql" go.temporal.io/server/cmd/tools/sql
mod=$(moddir go.temporal.io/server)
mkdir -p "$t/schema" "$t/config/dynamicconfig"
cp -r "$mod/schema/postgresql" "$t/schema/"
cp "$mod/config/docker.yaml" "$t/config/docker.yaml"
cp "$mod/config/dynamicconfig/docker.yaml" "$t/config/dynamicconfig/docker.yaml"
chmod -R u+w "$t"
bash scripts/install-tools.sh temporal >/dev/null
cp "$GOBIN/temporal" deploy/temporal/entrypoint.sh deploy/temporal/Dockerfile "$t/"
build temporal "$t"

# The Web UI: the ui-server module (its assets are embedded).
u=$STAGE/temporal-ui
rm -rf "$u" && mkdir -p "$u"
gobuild "$u/server" github.com/temporalio/ui-server/v2/cmd/server
umod=$(moddir github.com/temporalio/ui-server/v2)
cp "$umod/config/docker.yaml" "$u/docker.yaml"
cp deploy/temporal-ui/Dockerfile "$u/"
chmod -R u+w "$u"
build temporal-ui "$u"

# S3: versitygw, the version the tests use.
s=$STAGE/s3
rm -rf "$s" && mkdir -p "$s"
bash scripts/install-tools.sh all >/dev/null
cp "$GOBIN/versitygw" deploy/s3/Dockerfile "$s/"
build s3 "$s"

# The worker: its own Dockerfile, on this base and this Go.
build worker . --build-arg BUILDER="$GO_IMAGE" --build-arg BASE=resomap/base:bookworm \
  --build-arg GOPROXY="$(go env GOPROXY)" --build-arg GOFLAGS=-buildvcs=false
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep "^resomap/" | grep -v ':tmp' | sort
