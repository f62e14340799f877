#!/usr/bin/env bash
# Builds the six packages (.deb and .rpm of fence-ipmi, kvm-host-agent, hactl-kvm) into
# target/packages/ from one release build of the workspace.
#
#   packaging/build.sh                 # version from the workspace Cargo.toml
#   PKG_VERSION=0.1.0+2 packaging/build.sh   # another version (the upgrade test uses this)
#   PKG_OUT=/some/dir packaging/build.sh     # another output directory
#
# Needs: cargo, dpkg-deb, dpkg-shlibdeps (dpkg-dev), rpmbuild (rpm), gzip.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PKG=$ROOT/packaging

die() { echo "build.sh: $*" >&2; exit 1; }
for tool in cargo dpkg-deb dpkg-shlibdeps rpmbuild gzip objcopy; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install dpkg-dev rpm)"
done

WS_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$WS_VERSION" ] || die "no version in [workspace.package] of Cargo.toml"
VERSION=${PKG_VERSION:-$WS_VERSION}
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "bad version '$VERSION' (digits, letters, . + ~)"
OUT=${PKG_OUT:-$ROOT/target/packages}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
REL=$TARGET_DIR/release
WORK=$OUT/work
DEB_ARCH=$(dpkg --print-architecture)
RPM_ARCH=$(uname -m)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}

# 1. One release build of every binary the packages carry, plus the page generator.
cargo build --release --locked -p fence_ipmi -p kvm-host -p hactl-kvm -p hactl -p packaging-gen

rm -rf "$WORK"
mkdir -p "$WORK/gen" "$OUT"

# 2. Generated documentation: every man page from the program's own description of itself.
GEN=$WORK/gen
"$REL/fence_ipmi" -o metadata >"$GEN/fence_ipmi-metadata.xml"
"$REL/packaging-gen" fence-man --metadata "$GEN/fence_ipmi-metadata.xml" \
    --package-version "$VERSION" --out "$GEN/fence_ipmi.8"
"$REL/kvm-host" meta-data >"$GEN/kvm-host-metadata.xml"
"$REL/kvm-host" check-peer --help >"$GEN/check-peer.txt"
"$REL/packaging-gen" ocf-man --metadata "$GEN/kvm-host-metadata.xml" \
    --package-version "$VERSION" --provider cloudstack \
    --section "kvm-host check-peer=$GEN/check-peer.txt" --out "$GEN/kvm-host.8"
"$REL/hactl" meta-data >"$GEN/hactl-metadata.xml"
"$REL/packaging-gen" ocf-man --metadata "$GEN/hactl-metadata.xml" \
    --package-version "$VERSION" --provider cloudstack --out "$GEN/hactl.8"
"$REL/packaging-gen" cli-man --out "$GEN/hactl-man"
"$REL/packaging-gen" completions --out "$GEN/completions"

# Changelog with this version on top (a rebuild with another version gets its own entry).
changelog() {
    if [ "$VERSION" != "$WS_VERSION" ]; then
        printf 'kvm-ha (%s) unstable; urgency=medium\n\n  * Rebuild as version %s.\n\n -- kvm-ha maintainers <kvm-ha@lists.example.org>  %s\n\n' \
            "$VERSION" "$VERSION" "$(date -R -u -d "@$SOURCE_DATE_EPOCH")"
    fi
    cat "$PKG/debian/changelog"
}

# 3. Staging: one file tree per package and format ($2 = deb | rpm).
gz() { gzip -9n -c "$1" >"$2"; }
put() { install -D -m "$1" "$2" "$3"; }   # mode source destination

stage_common() { # package root: copyright (Apache-2.0) and changelog, as Debian policy wants
    local doc=$2/usr/share/doc/$1
    put 0644 "$PKG/debian/copyright" "$doc/copyright"
    changelog | gzip -9n >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
}

# The release profile strips symbols; the compiler's .comment section is dropped too.
binary() { install -D -m 0755 "$1" "$2" && objcopy --remove-section=.comment "$2"; }

stage_fence_ipmi() { # root format
    local r=$1
    binary "$REL/fence_ipmi" "$r/usr/sbin/fence_ipmi"
    mkdir -p "$r/usr/share/man/man8"
    gz "$GEN/fence_ipmi.8" "$r/usr/share/man/man8/fence_ipmi.8.gz"
    put 0644 "$ROOT/agents/fence_ipmi/README.md" "$r/usr/share/doc/fence-ipmi/README.md"
    put 0644 "$GEN/fence_ipmi-metadata.xml" "$r/usr/share/doc/fence-ipmi/fence_ipmi-metadata.xml"
    stage_common fence-ipmi "$r"
}

stage_kvm_host() { # root format
    local r=$1 fmt=$2 unitdir
    if [ "$fmt" = deb ]; then unitdir=$r/lib/systemd/system; else unitdir=$r/usr/lib/systemd/system; fi
    binary "$REL/kvm-host" "$r/usr/lib/ocf/resource.d/cloudstack/kvm-host"
    mkdir -p "$r/usr/sbin"
    ln -s ../lib/ocf/resource.d/cloudstack/kvm-host "$r/usr/sbin/kvm-host"
    put 0644 "$PKG/systemd/kvm-host-heartbeat.service" "$unitdir/kvm-host-heartbeat.service"
    put 0644 "$PKG/etc/heartbeat.env" "$r/etc/kvm-host/heartbeat.env"
    mkdir -p "$r/usr/share/man/man8"
    gz "$GEN/kvm-host.8" "$r/usr/share/man/man8/kvm-host.8.gz"
    put 0644 "$ROOT/resource-scripts/README.md" "$r/usr/share/doc/kvm-host-agent/README.md"
    stage_common kvm-host-agent "$r"
}

stage_hactl_kvm() { # root format
    local r=$1 fmt=$2 unitdir zshdir
    if [ "$fmt" = deb ]; then
        unitdir=$r/lib/systemd/system; zshdir=$r/usr/share/zsh/vendor-completions
    else
        unitdir=$r/usr/lib/systemd/system; zshdir=$r/usr/share/zsh/site-functions
    fi
    binary "$REL/hactl-kvm" "$r/usr/sbin/hactl-kvm"
    put 0644 "$ROOT/hactl-kvm/etc/hactl.toml" "$r/etc/hactl-kvm/hactl.toml"
    put 0644 "$PKG/etc/secrets.toml" "$r/usr/share/hactl-kvm/secrets.toml.template"
    put 0644 "$PKG/systemd/hactl-kvm.service" "$unitdir/hactl-kvm.service"
    mkdir -p "$r/usr/share/man/man8"
    for page in "$GEN"/hactl-man/*.8; do
        gz "$page" "$r/usr/share/man/man8/$(basename "$page").gz"
    done
    put 0644 "$GEN/completions/hactl-kvm" "$r/usr/share/bash-completion/completions/hactl-kvm"
    put 0644 "$GEN/completions/_hactl-kvm" "$zshdir/_hactl-kvm"
    put 0644 "$GEN/completions/hactl-kvm.fish" "$r/usr/share/fish/vendor_completions.d/hactl-kvm.fish"
    # The OCF agent that runs hactl-kvm under Pacemaker (ocf:cloudstack:hactl).
    binary "$REL/hactl" "$r/usr/lib/ocf/resource.d/cloudstack/hactl"
    gz "$GEN/hactl.8" "$r/usr/share/man/man8/hactl.8.gz"
    stage_common hactl-kvm "$r"
}

# Package metadata: name|stage function|summary|deb Depends extra|deb Recommends|deb Suggests|
# rpm Requires|rpm Recommends|rpm Suggests
PACKAGES=(
"fence-ipmi|stage_fence_ipmi|Native IPMI fence agent, drop-in for fence_ipmilan||pacemaker||none|pacemaker|none"
"kvm-host-agent|stage_kvm_host|OCF agent and storage heartbeat for KVM host HA||libvirt-clients, nfs-common|pacemaker, resource-agents|none|libvirt-client, nfs-utils|pacemaker, resource-agents"
"hactl-kvm|stage_hactl_kvm|KVM host HA and fencing coordinator|openssh-client|nfs-common|pacemaker|openssh-clients|nfs-utils|pacemaker"
)

long_description() {
    case $1 in
    fence-ipmi) cat <<'EOF'
 fence_ipmi is a STONITH fence agent for IPMI-over-LAN BMCs with the parameters,
 stdin/argv conventions, outputs, exit codes and metadata of fence-agents'
 fence_ipmilan. It speaks IPMI itself (one RMCP+ session per action) and never
 puts a secret into a process argument list.
EOF
    ;;
    kvm-host-agent) cat <<'EOF'
 ocf:cloudstack:kvm-host marks a KVM hypervisor as HA-ready (libvirt, CloudStack
 agent) and keeps its heartbeat on the shared NFS storage; kvm-host check-peer
 is the neighbour activity check the coordinator runs. Includes a systemd unit
 running the heartbeat on hosts that are not in a Pacemaker cluster.
EOF
    ;;
    hactl-kvm) cat <<'EOF'
 hactl-kvm keeps KVM hosts of CloudStack clusters highly available: health and
 activity checks, fencing over IPMI with quorum, a fence-rate cap and a
 mass-failure guard, and a journal of every decision. For management nodes.
EOF
    ;;
    esac
}

shlibs_of() { # binary -> "libc6 (>= x), ..."
    local tmp
    tmp=$(mktemp -d)
    mkdir "$tmp/debian"
    touch "$tmp/debian/control"
    (cd "$tmp" && dpkg-shlibdeps -O -e"$1" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
    rm -rf "$tmp"
}

build_deb() { # spec-line
    IFS='|' read -r name stage summary depends recommends suggests _ _ _ <<<"$1"
    local r=$WORK/deb/$name bin
    rm -rf "$r"; mkdir -p "$r/DEBIAN"
    "$stage" "$r" deb
    case $name in
        fence-ipmi) bin=$r/usr/sbin/fence_ipmi ;;
        kvm-host-agent) bin=$r/usr/lib/ocf/resource.d/cloudstack/kvm-host ;;
        hactl-kvm) bin=$r/usr/sbin/hactl-kvm ;;
    esac
    local deps
    deps=$(shlibs_of "$bin")
    if [ -n "$depends" ]; then deps="$deps, $depends"; fi
    if [ -f "$PKG/lint/$name.lintian-overrides" ]; then
        put 0644 "$PKG/lint/$name.lintian-overrides" "$r/usr/share/lintian/overrides/$name"
    fi
    {
        echo "Package: $name"
        echo "Version: $VERSION"
        echo "Architecture: $DEB_ARCH"
        echo "Maintainer: kvm-ha maintainers <kvm-ha@lists.example.org>"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$r" | cut -f1)"
        echo "Depends: $deps"
        if [ -n "$recommends" ]; then echo "Recommends: $recommends"; fi
        if [ -n "$suggests" ]; then echo "Suggests: $suggests"; fi
        echo "Section: admin"
        echo "Priority: optional"
        echo "Homepage: https://github.com/kvm-ha/kvm-ha"
        echo "Description: $summary"
        long_description "$name"
    } >"$r/DEBIAN/control"
    if [ -d "$r/etc" ]; then
        (cd "$r" && find etc -type f | sed 's|^|/|' | sort) >"$r/DEBIAN/conffiles"
    fi
    for script in postinst prerm postrm; do
        if [ -f "$PKG/debian/$name/$script" ]; then
            put 0755 "$PKG/debian/$name/$script" "$r/DEBIAN/$script"
        fi
    done
    (cd "$r" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort \
        | xargs -r md5sum) >"$r/DEBIAN/md5sums"
    chmod 0644 "$r/DEBIAN/control" "$r/DEBIAN/md5sums"
    if [ -f "$r/DEBIAN/conffiles" ]; then chmod 0644 "$r/DEBIAN/conffiles"; fi
    find "$r" -type d -exec chmod 0755 {} +
    dpkg-deb --root-owner-group -Zxz --build "$r" "$OUT/${name}_${VERSION}_${DEB_ARCH}.deb" >/dev/null
}

build_rpm() { # spec-line
    IFS='|' read -r name stage summary _ _ _ requires recommends suggests <<<"$1"
    local r=$WORK/rpm/$name top=$WORK/rpmbuild
    rm -rf "$r"; mkdir -p "$r" "$top"
    "$stage" "$r" rpm
    find "$r" -type d -exec chmod 0755 {} +
    long_description "$name" | sed 's/^ //' >"$WORK/rpm/$name.description"
    rpmbuild -bb --quiet "$PKG/rpm/package.spec" \
        --define "_topdir $top" \
        --define "_rpmdir $top/RPMS" \
        --define "pkg_name $name" \
        --define "pkg_version $VERSION" \
        --define "pkg_summary $summary" \
        --define "pkg_requires $requires" \
        --define "pkg_recommends $recommends" \
        --define "pkg_suggests $suggests" \
        --define "pkg_stage $r" \
        --define "pkg_description_file $WORK/rpm/$name.description" \
        --define "pkg_scripts $PKG/rpm/$name.scripts" \
        --define "_build_id_links none" \
        --define "source_date_epoch_from_changelog 0" \
        --define "use_source_date_epoch_as_buildtime 1" \
        >/dev/null
    mv "$top/RPMS/$RPM_ARCH/$name-$VERSION-1.$RPM_ARCH.rpm" "$OUT/"
}

rm -f "$OUT"/*.deb "$OUT"/*.rpm
for spec in "${PACKAGES[@]}"; do
    build_deb "$spec"
    build_rpm "$spec"
done
ls -l "$OUT"/*.deb "$OUT"/*.rpm
