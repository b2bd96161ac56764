#!/usr/bin/env bash
# The SELinux policy fixture: the text file_contexts family of Debian's reference policy
# (selinux-policy-default, compiled on this host by semodule when scripts/deps.sh installed it),
# copied to $FIX/selinux-default/ without the .bin files so libselinux (the oracle) and diskfab
# read the same text. Cached and idempotent; usage: fixture_selinux.sh FIX
set -euo pipefail
FIX=$1
OUT="$FIX/selinux-default"
[ -f "$OUT.complete" ] && exit 0
SRC=/etc/selinux/default/contexts/files
if [ ! -s "$SRC/file_contexts" ]; then
  echo "fixtures: $SRC/file_contexts is missing: install selinux-policy-default (scripts/deps.sh)" >&2
  exit 1
fi
rm -rf "$OUT"; mkdir -p "$OUT"
for f in file_contexts file_contexts.homedirs file_contexts.local file_contexts.subs file_contexts.subs_dist; do
  if [ -f "$SRC/$f" ]; then cp "$SRC/$f" "$OUT/$f"; fi
done
touch "$OUT.complete"
