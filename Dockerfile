# matchbook-gateway container image. Build: docker build -t matchbook-gateway .
# The runtime stage is reproduced and started by test/e2e/container-image.test.ts, which reads
# this file: keep every step of the runtime stage one it knows (COPY, npm, apt-get, useradd).

# Debian bookworm-slim, never Alpine: uWebSockets.js ships glibc binaries only. The Node version
# must satisfy package.json "engines" (the test checks it).
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.browser.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build

FROM node:20.20.2-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="matchbook-gateway" \
      org.opencontainers.image.description="Coinbase-compatible WebSocket market-data gateway on uWebSockets.js" \
      org.opencontainers.image.licenses="UNLICENSED" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/node:20.20.2-bookworm-slim"
# tini as PID 1 forwards SIGTERM to Node and reaps zombies; the account is numeric and fixed so a
# pod's runAsUser/fsGroup can name it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gateway
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
    && npm cache clean --force
# Only the gateway's own compiled code (not bench/) and the live page (its HTML and CSS, and the
# browser build of its script and the client), owned by root: the process cannot change them.
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/browser ./dist/browser
COPY --from=build /app/src/page/index.html /app/src/page/style.css ./src/page/
USER 10001:10001
# The gateway writes nothing but stdout: the root filesystem can be read-only. /tmp is the one
# writable path declared for whatever a library might need (an emptyDir in the pod).
VOLUME ["/tmp"]
# 8080: WebSocket, REST, /healthz, /readyz, /metrics. 9091: ADMIN_PORT (health and metrics only).
EXPOSE 8080 9091
# Slim images have no curl: Node's own fetch asks /healthz on the port the gateway listens on.
# Three failures 10 s apart leave a starting gateway (up in about a second) ample time, so no
# --start-period (which dockerfilelint 1.8.0 misreads as an invalid option).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--max-semi-space-size=4", "dist/src/main.js"]
