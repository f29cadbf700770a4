#!/usr/bin/env bash
# `make chromium`: a headless Chromium for the report tests (screenshots of the HTML report), from Debian's
# binary packages only: `chromium` and the libraries this machine lacks, downloaded with apt-get (no root needed
# for the download; nothing is installed system-wide) and unpacked into the cache. The machine's package lists
# are used as they are; without them a private apt state is updated from the machine's own Debian sources.
#
#   output  <cache>/chromium/<version>/root/... and <venv>/bin/chromium-lif (a wrapper setting LD_LIBRARY_PATH)
# Environment: VENV (default .venv), LIF_DIFFUSION_CACHE.
set -euo pipefail

VENV=${VENV:-.venv}
CACHE=${LIF_DIFFUSION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lif-diffusion}
say() { printf '\033[1m[make chromium]\033[0m %s\n' "$*" >&2; }
die() { printf '[make chromium] error: %s\n' "$*" >&2; exit 1; }
[ -d "$VENV/bin" ] || die "no Python environment at $VENV: run 'make install' first"
command -v apt-get >/dev/null || die "apt-get not found: this recipe needs a Debian-like machine; put a Chromium \
on PATH as chromium-lif instead"

APT_OPTS=(-q -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
version=$(apt-cache policy chromium 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  apt="$CACHE/apt-bin"
  mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial"
  APT_OPTS+=(-o "Dir::State=$apt/state" -o "Dir::State::status=/var/lib/dpkg/status" -o "Dir::Cache=$apt/cache")
  say "updating a private copy of the package lists"
  apt-get "${APT_OPTS[@]}" update >/dev/null || die "apt-get update failed"
  version=$(apt-cache "${APT_OPTS[@]}" policy chromium | awk '/Candidate:/ {print $2}')
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no chromium package in this machine's Debian sources"

dest="$CACHE/chromium/$version"
wrapper="$VENV/bin/chromium-lif"
if [ ! -x "$dest/root/usr/lib/chromium/chromium" ]; then
  say "downloading chromium $version and the libraries this machine lacks"
  work=$(mktemp -d "$CACHE/chromium.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mapfile -t pkgs < <(apt-get "${APT_OPTS[@]}" -s install --no-install-recommends chromium | awk '/^Inst/ {print $2}')
  [ "${#pkgs[@]}" -gt 0 ] || pkgs=(chromium chromium-common)
  (cd "$work" && apt-get "${APT_OPTS[@]}" download "${pkgs[@]}" >/dev/null 2>&1) || die "apt-get download failed"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
  [ -x "$work/root/usr/lib/chromium/chromium" ] || die "the chromium package has no usr/lib/chromium/chromium"
  rm -rf "$dest" && mkdir -p "$(dirname "$dest")" && mv "$work" "$dest"
  trap - EXIT
  rm -f "$dest"/*.deb
fi
libs="$dest/root/usr/lib/x86_64-linux-gnu"
cat > "$wrapper.tmp" <<EOF
#!/bin/sh
# headless Chromium $version from Debian packages (make chromium)
LD_LIBRARY_PATH="$libs:$libs/pulseaudio\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dest/root/usr/lib/chromium/chromium" "\$@"
EOF
chmod +x "$wrapper.tmp" && mv "$wrapper.tmp" "$wrapper"
"$wrapper" --headless --no-sandbox --disable-gpu --dump-dom "data:text/html,<p>ok</p>" 2>/dev/null | grep -q ok \
  || die "the unpacked chromium does not start; run $wrapper --headless --dump-dom about:blank to see why"
say "chromium $version: $wrapper"
