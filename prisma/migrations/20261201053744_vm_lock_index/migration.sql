-- CreateIndex
CREATE INDEX "Vm_lockJobId_idx" ON "Vm"("lockJobId");
