#!/usr/bin/env bash
# Build the tke-vpc-cni image from ./Dockerfile with buildah (no Docker engine, no
# Docker Hub): the base image is a minimal Debian bookworm root with python3 made by
# debootstrap from the Debian mirror apt already uses, imported as a local image, and
# passed to the same Dockerfile as --build-arg BASE_IMAGE (its default stays the
# public python:3.11-slim). As root. docs/image.md has the figures.
#
#   hack/image/build.sh          base (made once, then reused) + image + export
#   hack/image/build.sh base     only the base image
#
# Environment (all optional):
#   TKE_IMAGE_CACHE   buildah storage and the base's stamp (default /var/cache/tke-vpc-cni/image)
#   TKE_LOCAL_IMAGES  where the nodes' registries look for OCI layouts
#                     (default /var/cache/tke-vpc-cni/images; localnode/registry.py)
#   IMAGE             the local tag (default localhost/tke-vpc-cni:dev)
#   SERVE_AS          the reference the nodes pull (default docker.io/library/tke-vpc-cni:dev,
#                     i.e. "tke-vpc-cni:dev" in a pod spec)
#   BASE_IMAGE        the base's tag (default localhost/tke-base:bookworm)
#   DEBIAN_MIRROR     default: the first bookworm mirror of apt's sources
#   STORAGE_DRIVER    overlay (default; falls back to vfs when overlay cannot mount)
#   TKE_IMAGE_CACHE_MAX_MB  past this, untagged layers are pruned after a build (default 4096;
#                     the next build then reinstalls the dependencies once)
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$here"

cache="${TKE_IMAGE_CACHE:-/var/cache/tke-vpc-cni/image}"
local_images="${TKE_LOCAL_IMAGES:-/var/cache/tke-vpc-cni/images}"
image="${IMAGE:-localhost/tke-vpc-cni:dev}"
serve_as="${SERVE_AS:-docker.io/library/tke-vpc-cni:dev}"
base_image="${BASE_IMAGE:-localhost/tke-base:bookworm}"
suite=bookworm
# What the base holds. Changing this list (or the recipe below) rebuilds the base.
base_packages="python3,python3-venv,ca-certificates"
base_recipe="v1 $suite minbase $base_packages"

say() { printf '[image %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'hack/image/build.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (buildah storage under $cache, debootstrap)"
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || die "$tool not found: run hack/setup.sh (step: apt; hack/setup-debian.sh)"
done

mkdir -p "$cache"
# One build at a time per cache (the e2e test and `make image` may overlap).
exec 9>"$cache/.lock"
flock 9
driver="${STORAGE_DRIVER:-}"
if [ -z "$driver" ]; then
  driver="$(cat "$cache/storage-driver" 2>/dev/null || true)"
fi
if [ -z "$driver" ]; then
  # overlay needs a kernel overlayfs whose upper dir may live under $cache; probe once.
  probe="$(mktemp -d "$cache/probe.XXXXXX")"
  mkdir -p "$probe"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    umount "$probe/m"; driver=overlay
  else
    driver=vfs
  fi
  rm -rf "$probe"
  echo "$driver" > "$cache/storage-driver"
fi
runroot="/run/tke-vpc-cni-buildah/$(printf '%s' "$cache" | sha256sum | cut -c1-12)"
bh() {
  buildah --root "$cache/storage" --runroot "$runroot" \
          --storage-driver "$driver" "$@"
}

have_image() { bh inspect --type image "$1" >/dev/null 2>&1; }

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
         | awk -v s="$suite" '$2 == s {print $1; exit}')"
  [ -n "$uri" ] || die "no '$suite' mirror in apt's sources; set DEBIAN_MIRROR"
  echo "$uri"
}

build_base() {
  local stamp="$cache/base.recipe"
  if have_image "$base_image" && [ "$(cat "$stamp" 2>/dev/null)" = "$base_recipe" ]; then
    say "base $base_image: cached ($base_recipe)"
    return
  fi
  local t0=$SECONDS root="$cache/base-rootfs.tmp" url
  url="$(mirror)"
  say "base $base_image: debootstrap $suite ($base_packages) from $url"
  rm -rf "$root"
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$url" \
    > "$cache/debootstrap.log" 2>&1 \
    || die "debootstrap failed (log: $cache/debootstrap.log; the last lines:
$(tail -5 "$cache/debootstrap.log"))"
  # An image, not a machine: no package caches, docs or device nodes.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
         "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
         "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/* "$root"/tmp/* \
         "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
  printf 'deb %s %s main\n' "$url" "$suite" > "$root/etc/apt/sources.list"
  local ctr
  ctr="$(bh from --quiet scratch)"
  # The copy runs with the container's root mounted; on any error the container goes.
  trap 'bh rm "$ctr" >/dev/null 2>&1 || true' RETURN
  tar -C "$root" --numeric-owner -cf "$root.tar" .
  bh add --quiet "$ctr" "$root.tar" /  # a local tar archive is extracted
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --cmd '["/usr/bin/python3"]' \
            --label org.opencontainers.image.description="Debian $suite minbase + python3 (debootstrap; hack/image/build.sh)" \
            --label io.tke-vpc-cni.base-recipe="$base_recipe" "$ctr"
  bh commit --quiet --rm "$ctr" "$base_image" >/dev/null
  trap - RETURN
  echo "$base_recipe" > "$stamp"
  rm -rf "$root" "$root.tar"
  say "base $base_image: built in $((SECONDS - t0)) s"
}

build_image() {
  local t0=$SECONDS
  local ca=() cert
  # pip's CA bundle as the host configures it (a TLS-inspecting proxy's CA lives there):
  # bind-mounted for the RUN steps only, never copied into the image.
  cert="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
  if [ -f "$cert" ]; then
    ca=(--volume "$cert:/run/tke-build-ca.crt:ro" --build-arg PIP_CERT=/run/tke-build-ca.crt)
  fi
  say "image $image: buildah bud --build-arg BASE_IMAGE=$base_image ${ca[*]} -f Dockerfile ."
  bh bud --quiet --layers --isolation chroot --pull-never "${ca[@]}" \
         --build-arg BASE_IMAGE="$base_image" -t "$image" -f Dockerfile . >/dev/null
  say "image $image: built in $((SECONDS - t0)) s"
}

export_image() {
  # A fresh OCI layout, then swapped in: a reader never sees a half-written one.
  local t0=$SECONDS name dest tmp
  name="$(basename "${serve_as%%:*}")"
  dest="$local_images/$name"
  tmp="$local_images/.$name.tmp"
  mkdir -p "$local_images"
  local id
  id="$(bh inspect --type image --format '{{.FromImageID}}' "$image")"
  if [ "$(cat "$dest/.image-id" 2>/dev/null)" = "$id" ]; then
    say "export: $dest already holds this image ($id)"
    return
  fi
  rm -rf "$tmp"
  bh push --quiet "$image" "oci:$tmp:$serve_as" >/dev/null
  echo "$id" > "$tmp/.image-id"
  rm -rf "$dest.old"
  if [ -e "$dest" ]; then mv "$dest" "$dest.old"; fi
  mv "$tmp" "$dest"
  rm -rf "$dest.old"
  say "exported as $serve_as to $dest ($(du -sh "$dest" | cut -f1)) in $((SECONDS - t0)) s"
}

prune() {
  # Each rebuild leaves untagged layers (the cache of --layers, earlier images);
  # keep them for speed until the store passes the cap.
  local used max="${TKE_IMAGE_CACHE_MAX_MB:-4096}"
  used="$(du -sm "$cache/storage" 2>/dev/null | cut -f1)"
  if [ "${used:-0}" -gt "$max" ]; then
    say "store $used MB > $max MB: pruning untagged images"
    bh rmi --prune >/dev/null || true
  fi
}

release_store() {
  # No working container left by a failed step (we hold the cache's lock: they are ours),
  # and no mount: the overlay driver bind-mounts its directory on itself while in use.
  bh rm --all >/dev/null 2>&1 || true
  if mountpoint -q "$cache/storage/overlay" 2>/dev/null; then
    umount "$cache/storage/overlay" || true
  fi
}
trap release_store EXIT

case "${1:-all}" in
  base) build_base ;;
  all)
    build_base
    build_image
    export_image
    prune
    size="$(bh images --format '{{.Size}}' "$image" | head -1)"
    say "done: $image ($size), served to the nodes as $serve_as"
    ;;
  *) die "usage: hack/image/build.sh [base|all]" ;;
esac
