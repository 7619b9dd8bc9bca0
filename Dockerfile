# syntax=docker/dockerfile:1
#
# The damnit-ts backend for one proposal: `amore-proto listen` in the database directory
# /proposal/usr/Shared/amore, so that the proposal mounted at /proposal (raw/, proc/, usr/) is
# found by convention. docs/operations.md, "Running in a container", has the commands.
#
#   docker build -t damnit-ts .
#   docker run -d --restart unless-stopped --user "$(id -u):$(id -g)" \
#       -v /gpfs/exfel/exp/SPB/202601/p001234:/proposal damnit-ts

ARG NODE_IMAGE=node:20-bookworm-slim

# Build: better-sqlite3 and node-pty compile from source, against the Node headers in the image.
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/damnit-ts
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run: Debian's Python stack for context files (the same packages scripts/setup.sh installs).
FROM ${NODE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-numpy python3-h5py python3-xarray python3-scipy python3-pandas \
        python3-yaml python3-requests python3-extra-data python3-h5netcdf python3-netcdf4 \
        python3-matplotlib python3-plotly python3-pyflakes python3-pil \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/damnit-ts
COPY package.json ./
COPY --from=build /opt/damnit-ts/node_modules ./node_modules
COPY --from=build /opt/damnit-ts/dist/src ./dist/src
COPY python-shim ./python-shim
# Any user id may run the image (--user): matplotlib needs a writable configuration directory.
ENV MPLCONFIGDIR=/tmp/matplotlib
USER node
WORKDIR /proposal/usr/Shared/amore
ENTRYPOINT ["node", "/opt/damnit-ts/dist/src/cli/main.js"]
CMD ["listen"]
