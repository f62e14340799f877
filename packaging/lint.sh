#!/usr/bin/env bash
# Lints the packages packaging/build.sh made: lintian (pedantic and info tags included) on every
# .deb, rpmlint on every .rpm. Any tag not listed as an exception fails (exit 1). Exceptions and
# their reasons: packaging/lint/EXCEPTIONS.md (lintian overrides ship inside the .debs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${PKG_OUT:-$PWD/target/packages}
command -v lintian >/dev/null || { echo "lint.sh: lintian not found (apt-get install lintian)" >&2; exit 1; }
command -v rpmlint >/dev/null || { echo "lint.sh: rpmlint not found (apt-get install rpmlint)" >&2; exit 1; }
shopt -s nullglob
debs=("$OUT"/*.deb); rpms=("$OUT"/*.rpm)
[ ${#debs[@]} -gt 0 ] && [ ${#rpms[@]} -gt 0 ] || { echo "lint.sh: no packages in $OUT (run packaging/build.sh)" >&2; exit 1; }
lintian --pedantic --info --fail-on error,warning,info,pedantic "${debs[@]}"
rpmlint -c packaging/lint/rpmlint.toml "${rpms[@]}" | tee /dev/stderr | grep -q ' 0 errors, 0 warnings' \
    || { echo "lint.sh: rpmlint reported errors or warnings" >&2; exit 1; }
echo "lint.sh: lintian and rpmlint clean"
