#!/usr/bin/env bash
# Makes what the secured stack (docker-compose.secure.yml) needs in DIR
# (default deploy/secrets, which git ignores): a certificate authority, the
# Temporal server's certificate (for the names temporal, localhost and
# 127.0.0.1 plus RESOMAP_CERT_HOSTS, e.g. "temporal.lab.example,10.0.0.5"),
# and one client certificate that workers, the starter and the Web UI
# present (Temporal refuses a client without one). What exists is kept:
# delete DIR to start over. Usage: make-certs.sh [DIR]
set -euo pipefail
dir=${1:-deploy/secrets}
days=${RESOMAP_CERT_DAYS:-825}
mkdir -p "$dir"
cd "$dir"
command -v openssl >/dev/null || { echo "make-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }

# The CA's key apart (ca-private/): the stack mounts single files, never it.
mkdir -p ca-private
chmod 0700 ca-private
for f in ca-key.pem ca.srl; do # a folder made before the key moved
  [ -f "$f" ] && [ ! -f "ca-private/$f" ] && mv "$f" "ca-private/$f"
done
if [ -f ca.pem ] && [ ! -f ca-private/ca-key.pem ]; then
  echo "make-certs: $dir/ca.pem is there but not its key (ca-private/ca-key.pem): delete $dir to start over" >&2
  exit 1
fi
if [ ! -f ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-private/ca-key.pem -out ca.pem \
    -days "$days" -subj "/CN=ResoMap stack CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  echo "make-certs: $dir/ca.pem (the authority; its key, ca-private/ca-key.pem, stays off the servers)"
fi

# cert NAME SUBJECT EXTENSIONS: a key and a certificate the CA signs.
cert() {
  local name=$1 subject=$2 ext=$3
  [ -f "$name.pem" ] && return
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name-key.pem" -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-private/ca-key.pem -CAcreateserial -CAserial ca-private/ca.srl -days "$days" -extfile "$name.ext" -out "$name.pem" \
    2>"$name.err" || { cat "$name.err" >&2; rm -f "$name.pem"; exit 1; }
  rm -f "$name.csr" "$name.ext" "$name.err"
  echo "make-certs: $dir/$name.pem"
}

san="DNS:temporal,DNS:localhost,IP:127.0.0.1"
IFS=',' read -ra extra <<<"${RESOMAP_CERT_HOSTS:-}"
for h in "${extra[@]}"; do
  h=${h// /}
  [ -z "$h" ] && continue
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+=",IP:$h"; else san+=",DNS:$h"; fi
done
# The server's certificate serves the frontend and Temporal's own services
# among themselves (internode), which present it as clients too.
cert temporal "/CN=temporal" "subjectAltName=$san
extendedKeyUsage=serverAuth,clientAuth
keyUsage=critical,digitalSignature"
cert client "/CN=resomap-client" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
# Keys for their owner only: the local images run as root, which reads
# them; upstream images that run as another user (temporalio/* as uid 1000)
# need them chowned to it.
chmod 0644 ca.pem temporal.pem client.pem
chmod 0600 ./*-key.pem ca-private/ca-key.pem
