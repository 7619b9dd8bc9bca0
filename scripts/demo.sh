#!/usr/bin/env bash
# The main job on bundled sample data: a synthetic proposal with five runs, a database for
# it holding the seed's example context, every run processed, and the table printed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
root="$repo/sample/p001234"
db="$root/usr/Shared/amore"
cli=(node "$repo/dist/src/cli/main.js")

rm -rf "$root"
/usr/bin/python3 "$repo/fixtures/make_sample_proposal.py" "$root" --runs 5 --proposal 1234
mkdir -p "$db"
cp "$repo/fixtures/sample/context.py" "$db/context.py"
cd "$db"
"${cli[@]}" proposal 1234
"${cli[@]}" db-config context_python /usr/bin/python3
"${cli[@]}" read-context
"${cli[@]}" reprocess 1 2 3 4 5
echo
"${cli[@]}" table
echo
echo "The database is in $db: runs.sqlite, extracted_data/p1234_r<N>.h5"
