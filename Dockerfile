# syntax=docker/dockerfile:1
# ops-service container image.
#   docker build -t ops-service .
#   docker run --rm -p 8080:8080 -e OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317
#     -e AUTH_MODE=jwt -e AUTH_JWKS_URL=https://idp.example.com/.well-known/jwks.json
#     -e AUTH_ISSUER=https://idp.example.com/ -e AUTH_AUDIENCE=ops-service ops-service
# APP_ENV=production makes an OTLP endpoint and authentication (AUTH_MODE=jwt with a JWKS source,
# issuer and audience) mandatory: without them the service exits 78.

# --- build: full install (dev dependencies carry tsc and esbuild), compile and bundle, then drop
# dev dependencies ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
# Manifests first: the install layer stays cached until the dependencies change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# .dockerignore keeps node_modules, dist, data, tests and git out of the context.
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# --- runtime: only what `node dist/main.js` needs, no compiler, no npm cache ---
FROM node:20-bookworm-slim AS runtime
# Listen on every interface: inside a container 127.0.0.1 is unreachable from outside.
ENV NODE_ENV=production \
    APP_ENV=production \
    HOST=0.0.0.0 \
    OPS_HOST=0.0.0.0
WORKDIR /app
# Files stay owned by root: the service user can read its code but not change it.
# package.json: the loader finds the package root (and config/) and the version from it.
COPY --from=build /app/package.json ./package.json
# dist/main.js is one bundled file (scripts/bundle.js); node_modules holds what it loads from
# outside when asked: PGlite (no DATABASE_URL) and the XState inspector.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config
# SQL migrations are applied at startup (inside the `starting` state).
COPY --from=build /app/migrations ./migrations
# The one writable path: the embedded PGlite database (./data/pglite) when no DATABASE_URL.
RUN mkdir -p /app/data && chown node:node /app/data
# The base image's unprivileged user (uid 1000).
USER node
# Main listener (PORT) and ops listener (OPS_PORT: /metrics, /lifecycle; keep it private).
EXPOSE 8080 9464
# The graceful path (readiness off, delay, drain, flush) starts on SIGTERM.
STOPSIGNAL SIGTERM
# /health answers while the event loop is responsive. slim images have no curl: node's fetch.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form, not `npm start` or a shell: node is PID 1 and receives SIGTERM itself (a shell or
# npm in between may not forward it, and docker would SIGKILL after the grace period).
CMD ["node", "dist/main.js"]
