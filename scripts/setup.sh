#!/usr/bin/env bash
# Sets up everything on a fresh Debian (bookworm) machine with Node 20, then runs the demo
# on bundled sample data. `--no-demo` stops after the build (CI uses it before running tests).
set -euo pipefail
cd "$(dirname "$0")/.."

run_demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) run_demo=0 ;;
    *) echo "usage: scripts/setup.sh [--no-demo]" >&2; exit 2 ;;
  esac
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

# Debian's Python stack for contexts (extra_data and what context files return), and the
# real services the backend drives: Slurm (with munge) and Supervisor; iproute2 for `ss`,
# with which the sharing tests look at supervisord's listening socket.
apt_packages=(
  python3 python3-venv python3-numpy python3-h5py python3-xarray python3-scipy python3-pandas
  python3-yaml python3-requests python3-extra-data python3-h5netcdf python3-netcdf4
  python3-matplotlib python3-plotly python3-pyflakes python3-pil
  hdf5-tools supervisor slurmctld slurmd slurm-client munge iproute2
)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# better-sqlite3 and node-pty compile against the system's Node headers (no prebuilt downloads here).
export npm_config_nodedir=/usr
npm ci --no-audit --no-fund

if [ -f scripts/fetch-pyflakes.sh ]; then bash scripts/fetch-pyflakes.sh; fi

npm run build

# amore-proto and damnit on PATH, and for npx from any directory.
bin_dir="$(npm prefix --global)/bin"
bash scripts/link-commands.sh "$bin_dir"

if [ "$run_demo" -eq 1 ]; then npm run demo; fi

echo
if sinfo --noheader >/dev/null 2>&1; then
  echo "Slurm answers here: cluster=True variables are submitted to it (docs/slurm.md)."
else
  echo "Slurm is installed but not configured on this machine, so cluster=True variables fail with"
  echo "'Slurm is not available on this machine'. To run them here instead, in a database directory:"
  echo "  amore-proto db-config --num cluster_fallback_local 1      (docs/slurm.md)"
fi
case ":$PATH:" in
  *":$bin_dir:"*) on_path="" ;;
  *) on_path="export PATH=\"$bin_dir:\$PATH\" && " ;;
esac
if [ "$run_demo" -eq 1 ]; then
  echo "Ready: ${on_path}cd sample/p001234/usr/Shared/amore && amore-proto table"
else
  echo "Ready: amore-proto and damnit are in $bin_dir${on_path:+ (not on your PATH: ${on_path% && })}"
fi
