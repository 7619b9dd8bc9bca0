#!/usr/bin/env bash
# Puts the CLI on PATH under the names in package.json's "bin" (amore-proto, damnit): links
# them to the built CLI in npm's global bin directory, where the shell finds them and where
# `npx amore-proto` looks before asking the registry. Another directory can be given.
#   usage: scripts/link-commands.sh [BIN_DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin_dir="${1:-$(npm prefix --global)/bin}"

sudo_cmd=()
if ! { mkdir -p "$bin_dir" 2>/dev/null && [ -w "$bin_dir" ]; }; then sudo_cmd=(sudo); fi
"${sudo_cmd[@]}" mkdir -p "$bin_dir"

node -e 'for (const [name, file] of Object.entries(require(process.argv[1]).bin)) console.log(`${name} ${file}`)' \
  "$repo/package.json" |
  while read -r name file; do
    "${sudo_cmd[@]}" ln -sfn "$repo/$file" "$bin_dir/$name"
    echo "Linked $bin_dir/$name -> $repo/$file"
  done
