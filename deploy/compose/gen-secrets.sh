#!/bin/sh
# The set-up step of docker-compose.yml (service `secrets`): makes, once, the TLS files of the Temporal
# cluster in /certs (a CA; the frontend's and the internode certificates; one client certificate for
# the workers, the CLIs, the Web UI and the admin tools) and the payload codec key in /codec. Files that
# exist are kept (a restart changes nothing); delete the volumes to make new ones.
set -eu
certs=/certs
codec=/codec
mkdir -p "$certs" "$codec"

if [ ! -f "$codec/codec.key" ]; then
  # keyid:base64key, the first line the current key (src/workers/codec.ts). Rotate: add a new first line.
  printf 'k%s:%s\n' "$(date +%Y%m%d)" "$(head -c 32 /dev/urandom | base64)" > "$codec/codec.key"
  chmod 0444 "$codec/codec.key"
  echo "secrets: made the codec key $codec/codec.key"
fi

if [ -f "$certs/ca.pem" ]; then
  echo "secrets: TLS files already in $certs"
  exit 0
fi
command -v openssl >/dev/null || apk add --no-cache openssl >/dev/null
cd "$certs"
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=conductor-temporal-ca" \
  -keyout ca.key -out ca.pem 2>/dev/null
# name, DNS names (comma-separated), extended key usage
issue() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  sans=$(echo "$2" | sed 's/\([^,]*\)/DNS:\1/g')
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$sans" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue frontend temporal-frontend,localhost serverAuth,clientAuth
issue internode internode.cluster.local serverAuth,clientAuth
issue client client clientAuth
rm -f ca.key ca.srl
# Readable by the non-root users of the images (node, temporal).
chmod 0444 ./*.pem ./*.key
echo "secrets: made the TLS files in $certs: $(ls "$certs" | tr '\n' ' ')"
