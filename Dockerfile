# One image for the API, the worker and the CLI. QEMU comes from Debian's packages.
FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      qemu-system-x86 qemu-utils util-linux ca-certificates curl \
      iproute2 nftables dnsmasq-base mtools dosfstools \
      busybox-static syslinux syslinux-common fdisk cpio xz-utils openssh-client
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.json prisma.config.ts ./
COPY prisma ./prisma
COPY packages ./packages
COPY apps ./apps
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund && npm run build
# The demo guest (Debian kernel + busybox, built offline from Debian packages), imported as the
# image `demo` by the compose file's `demo` service; then the apt lists go.
RUN bash scripts/guest/build-linux.sh --out /app/.cache/guests && rm -rf /var/lib/apt/lists/* /app/.cache/guests/.work
ENV NODE_ENV=production
EXPOSE 8080
CMD ["node", "apps/api/dist/main.js"]
