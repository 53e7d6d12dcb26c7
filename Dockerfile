# The project's workers (conductor, scheduler, compute): one image, the service's command picks the role.
FROM node:20-bookworm-slim
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY fleet ./fleet
ENV NODE_ENV=production
USER node
CMD ["node", "--import", "tsx", "src/workers/conductor-worker.ts"]
