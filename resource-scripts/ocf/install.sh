#!/bin/sh
# Installs the kvm-host OCF agent where Pacemaker looks for ocf:cloudstack:kvm-host.
# Usage: ocf/install.sh [PATH-TO-BUILT-kvm-host] ; honours DESTDIR for packaging.
set -eu
src=${1:-target/release/kvm-host}
dest="${DESTDIR:-}/usr/lib/ocf/resource.d/cloudstack"
[ -x "$src" ] || { echo "install.sh: $src not found; build with: cargo build --release -p kvm-host" >&2; exit 1; }
install -d -m 0755 "$dest"
install -m 0755 "$src" "$dest/kvm-host"
echo "installed $dest/kvm-host"
