#!/usr/bin/env bash
# Lays out the root filesystem of an aigov image in OUT_DIR: BINARY at /usr/local/bin, the
# shared libraries it loads (as ldd finds them: the C library and the loader), the CA
# certificates (TLS to AWS), and passwd/group entries for the non-root user 65532. The image is
# `FROM scratch` plus this directory: no base image, no registry, no shell, no package manager.
# Usage: rootfs.sh BINARY OUT_DIR
set -euo pipefail
[[ $# -eq 2 && -x "$1" ]] || { echo "usage: rootfs.sh BINARY OUT_DIR (BINARY executable)" >&2; exit 2; }
binary="$1" out="$2"
rm -rf "$out" && mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs"
cp "$binary" "$out/usr/local/bin/"
# Every library the dynamic loader maps, and the loader itself, at the paths it expects.
ldd "$binary" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  mkdir -p "$out$(dirname "$lib")"
  cp -L "$lib" "$out$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/etc/group"
