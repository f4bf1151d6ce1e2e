#!/bin/sh
# Seed a model registry volume from the models bundled in the image.
#
#   lineinspect-seed-registry SOURCE TARGET
#
# Copies every model directory of SOURCE that TARGET does not have yet; a model already
# in TARGET (promoted, retrained, hand-placed) is never touched, so running it on every
# pod or container start is safe. Each model is copied aside and renamed in, so a
# concurrent seeder (another pod) or a crash never leaves a half-copied model visible.
# Exit status: 0 seeded or nothing to do; 1 TARGET is missing or not writable by this
# uid (the message says which uid and what to fix); 2 bad usage or SOURCE has no models.
set -eu

if [ "$#" -ne 2 ]; then
  echo "usage: lineinspect-seed-registry SOURCE TARGET" >&2
  exit 2
fi
src=$1
dst=$2
uid=$(id -u)

if [ ! -d "$dst" ]; then
  echo "seed-registry: target $dst does not exist (is the registry volume mounted?)" >&2
  exit 1
fi
probe="$dst/.seed-probe-$uid-$$"
if ! ( : > "$probe" ) 2>/dev/null; then
  echo "seed-registry: $dst is not writable by uid $uid: give the volume to uid $uid" \
       "(Kubernetes: fsGroup; Compose: a named volume, or chown the host directory)" >&2
  exit 1
fi
rm -f "$probe"

found=0
for model in "$src"/*/; do
  [ -d "$model" ] || continue
  found=1
  name=$(basename "$model")
  if [ -e "$dst/$name" ]; then
    echo "seed-registry: $name already in $dst, kept"
    continue
  fi
  tmp="$dst/.seed-$name-$(uname -n)-$$"
  rm -rf "$tmp"
  cp -R "$model" "$tmp"
  if mv -T "$tmp" "$dst/$name" 2>/dev/null; then
    echo "seed-registry: copied $name into $dst"
  else
    rm -rf "$tmp"
    echo "seed-registry: $name appeared in $dst meanwhile (another seeder), kept"
  fi
done
if [ "$found" -eq 0 ]; then
  echo "seed-registry: no model directories in $src" >&2
  exit 2
fi
