import type { HandlerRegistry } from "./HandlerContext.js";
import { benchNoop, imageDelete } from "../handlers/image.js";
import { imageExport, vmExport } from "../handlers/exportDisk.js";
import { imageImport } from "../handlers/imageImport.js";
import { imageVerify } from "../handlers/imageVerify.js";
import { vmCreate } from "../handlers/vmCreate.js";
import { vmDelete } from "../handlers/vmDelete.js";
import { vmReboot, vmStart, vmStop } from "../handlers/vmPower.js";
import { vmNicAdd, vmNicRemove, vmPortAdd, vmPortRemove, vmProbe } from "../handlers/vmNetwork.js";
import { vmSnapshotCreate, vmSnapshotDelete, vmSnapshotRestore } from "../handlers/vmSnapshot.js";
import { vmResize } from "../handlers/vmResize.js";
import { vmClone } from "../handlers/vmClone.js";
import { vmMigrate } from "../handlers/vmMigrate.js";
import { backupDelete, backupVerify, vmBackup, vmBackupRestore } from "../handlers/vmBackup.js";

/** Every job type a worker runs. `vm.reconcile` and `image.reconcile` are only recorded, never queued. */
export const handlers: HandlerRegistry = {
  "vm.create": vmCreate,
  "vm.start": vmStart,
  "vm.stop": vmStop,
  "vm.reboot": vmReboot,
  "vm.delete": vmDelete,
  "vm.nic.add": vmNicAdd,
  "vm.nic.remove": vmNicRemove,
  "vm.port.add": vmPortAdd,
  "vm.port.remove": vmPortRemove,
  "vm.probe": vmProbe,
  "vm.resize": vmResize,
  "vm.clone": vmClone,
  "vm.migrate": vmMigrate,
  "vm.snapshot.create": vmSnapshotCreate,
  "vm.snapshot.restore": vmSnapshotRestore,
  "vm.snapshot.delete": vmSnapshotDelete,
  "vm.backup": vmBackup,
  "vm.backup.restore": vmBackupRestore,
  "backup.verify": backupVerify,
  "backup.delete": backupDelete,
  "image.import": imageImport,
  "image.export": imageExport,
  "vm.export": vmExport,
  "image.delete": imageDelete,
  "image.verify": imageVerify,
  "bench.noop": benchNoop,
};
