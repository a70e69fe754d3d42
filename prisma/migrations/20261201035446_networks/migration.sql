-- CreateEnum
CREATE TYPE "NetworkMode" AS ENUM ('nat', 'private');

-- AlterTable
ALTER TABLE "Host" ADD COLUMN     "address" TEXT,
ADD COLUMN     "network" JSONB;

-- AlterTable
ALTER TABLE "Vm" ADD COLUMN     "hostname" TEXT,
ADD COLUMN     "sshKeys" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "userData" TEXT;

-- CreateTable
CREATE TABLE "Network" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "mode" "NetworkMode" NOT NULL DEFAULT 'nat',
    "subnet" TEXT NOT NULL,
    "gateway" TEXT NOT NULL,
    "mtu" INTEGER NOT NULL,
    "dnsDomain" TEXT NOT NULL,
    "vni" SERIAL NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Network_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Nic" (
    "id" UUID NOT NULL,
    "vmId" UUID NOT NULL,
    "networkId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "mac" TEXT NOT NULL,
    "ip" TEXT NOT NULL,
    "leaseIp" TEXT,
    "leasedAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Nic_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PortForward" (
    "id" UUID NOT NULL,
    "nicId" UUID NOT NULL,
    "vmId" UUID NOT NULL,
    "hostId" TEXT NOT NULL,
    "protocol" TEXT NOT NULL,
    "address" TEXT,
    "hostPort" INTEGER NOT NULL,
    "guestPort" INTEGER NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PortForward_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Network_name_key" ON "Network"("name");

-- CreateIndex
CREATE UNIQUE INDEX "Network_vni_key" ON "Network"("vni");

-- CreateIndex
CREATE UNIQUE INDEX "Nic_mac_key" ON "Nic"("mac");

-- CreateIndex
CREATE UNIQUE INDEX "Nic_networkId_ip_key" ON "Nic"("networkId", "ip");

-- CreateIndex
CREATE UNIQUE INDEX "Nic_vmId_index_key" ON "Nic"("vmId", "index");

-- CreateIndex
CREATE INDEX "PortForward_vmId_idx" ON "PortForward"("vmId");

-- CreateIndex
CREATE UNIQUE INDEX "PortForward_hostId_protocol_hostPort_key" ON "PortForward"("hostId", "protocol", "hostPort");

-- AddForeignKey
ALTER TABLE "Nic" ADD CONSTRAINT "Nic_vmId_fkey" FOREIGN KEY ("vmId") REFERENCES "Vm"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Nic" ADD CONSTRAINT "Nic_networkId_fkey" FOREIGN KEY ("networkId") REFERENCES "Network"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PortForward" ADD CONSTRAINT "PortForward_nicId_fkey" FOREIGN KEY ("nicId") REFERENCES "Nic"("id") ON DELETE CASCADE ON UPDATE CASCADE;
