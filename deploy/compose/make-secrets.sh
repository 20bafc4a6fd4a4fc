#!/bin/sh
# The compose demo's secrets, made once into DIR (the secrets volume):
#   authority-ca.pem, authority.pem/.key  the test authority's server certificate for "authority"
#   kurier-ca.pem, kurier.pem/.key        Kurier's client certificate (mutual TLS)
#   vault.key                             the vault master key both instances share
#   admin.tokens                          name:roles:token for the admin API
# Keys 0600 and everything owned by 10001, the images' user. The CAs' keys
# are thrown away once they signed. Runs as root in the test-authority image
# (openssl). For anything but the demo, certificates come from your PKI.
set -eu
dir=${1:?usage: make-secrets.sh DIR}
owner=10001:10001
cd "$dir"
umask 077

if [ ! -s kurier.key ]; then
  work=$(mktemp -d)
  # ca NAME: a self-signed CA, its key in $work.
  ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
      -keyout "$work/$1-ca.key" -out "$1-ca.pem" -subj "/CN=Kurier demo $1 CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  }
  # leaf NAME CA EXT: a key (PKCS#8) and a certificate signed by CA.
  leaf() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$1.key" -out "$work/$1.csr" -subj "/CN=$1" 2>/dev/null
    printf '%s\n' "$3" > "$work/$1.ext"
    openssl x509 -req -in "$work/$1.csr" -CA "$2-ca.pem" -CAkey "$work/$2-ca.key" \
      -CAcreateserial -days 825 -extfile "$work/$1.ext" -out "$1.pem" 2>/dev/null
  }
  ca authority
  ca kurier
  leaf authority authority "subjectAltName=DNS:authority
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth"
  leaf kurier kurier "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  rm -rf "$work"
  chmod 644 ./*.pem
  echo "made the demo PKI"
fi
if [ ! -s vault.key ]; then
  openssl rand -hex 32 > vault.key
  echo "made the vault master key"
fi
if [ ! -s admin.tokens ]; then
  echo "demo:read,operate,view_payload:$(openssl rand -hex 24)" > admin.tokens
  echo "made an admin token (demo)"
fi
rm -f ./*.srl
chmod 600 ./*.key admin.tokens
chown "$owner" ./*
