# The project's workers (conductor, scheduler, compute): one image, the service's command picks the role.
# Built code only: `npm run build` compiles src/ to dist/ and writes the prebuilt workflow bundle
# (dist/workflow-bundle.js), which the conductor worker loads with NODE_ENV=production.
FROM node:20-bookworm-slim
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-workflow-bundle.ts ./scripts/
COPY src ./src
COPY fleet ./fleet
RUN npm run build && npm prune --omit=dev --no-audit --no-fund
ENV NODE_ENV=production
USER node
CMD ["node", "dist/src/workers/conductor-worker.js"]
