#!/usr/bin/env bash
# Regenerates the virt-inspector reference XMLs that crates/diskfab-cli/tests/inspect_vs_virt_inspector.rs
# compares `diskfab inspect` with. Run by hand, not in CI: virt-inspector boots a helper VM
# (libguestfs appliance), ~1-3 min per image under TCG. Needs libguestfs-tools (Debian 12: 1.48)
# and a qemu-system-x86 that installs beside the project's qemu-utils.
#   bash scripts/virt_inspector_refs.sh            # every fixture
#   bash scripts/virt_inspector_refs.sh rocky-mbr  # one
# For each fixture NAME it writes crates/diskfab-cli/tests/fixtures/virt-inspector/NAME.xml. When
# the full run fails (virt-inspector prints no XML at all then), the exact error is kept in
# NAME.failure.txt and NAME.xml comes from a rerun with --no-applications: the test then compares
# the fields virt-inspector did produce and checks applications against another oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v virt-inspector >/dev/null || {
  echo "virt_inspector_refs: virt-inspector not found (apt-get install libguestfs-tools)" >&2; exit 1; }
FIX=$(bash scripts/fixtures.sh)
OUT=crates/diskfab-cli/tests/fixtures/virt-inspector
mkdir -p "$OUT"
# No KVM here (and none needed): the direct backend under TCG.
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
# name format image
FIXTURES=(
  "debian-mbr qcow2 $FIX/debian-mbr.qcow2"
  "debian-gpt raw $FIX/debian-gpt.raw"
  "rocky-mbr raw $FIX/rocky-mbr.raw"
  "rocky-lvm-xfs raw $FIX/rocky-lvm-xfs.raw"
)
version=$(virt-inspector --version 2>&1 | sed -n 1p)
for f in "${FIXTURES[@]}"; do
  read -r name format image <<<"$f"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  echo "virt_inspector_refs: $name ($version)" >&2
  rm -f "$OUT/$name.failure.txt"
  err=$(mktemp)
  if virt-inspector --format="$format" -a "$image" >"$OUT/$name.xml.tmp" 2>"$err"; then
    mv "$OUT/$name.xml.tmp" "$OUT/$name.xml"
  else
    {
      echo "# $version: virt-inspector --format=$format -a $name image (exit status $?, no XML printed)"
      cat "$err"
    } >"$OUT/$name.failure.txt"
    echo "virt_inspector_refs: $name failed: $(cat "$err"); rerunning with --no-applications" >&2
    virt-inspector --format="$format" -a "$image" --no-applications >"$OUT/$name.xml.tmp"
    mv "$OUT/$name.xml.tmp" "$OUT/$name.xml"
  fi
  rm -f "$err"
done
