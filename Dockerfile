# pgmesh on Bun (the fastest of the three runtimes for fan-out). Dependencies are
# installed by npm from package-lock.json, so the image runs the pinned versions.
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM oven/bun:1.4-slim
WORKDIR /app
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY public ./public
EXPOSE 8080
CMD ["bun", "src/main.ts"]
