import type { HandlerRegistry } from "./HandlerContext.js";
import { benchNoop, imageDelete } from "../handlers/image.js";
import { imageExport, vmExport } from "../handlers/exportDisk.js";
import { imageImport } from "../handlers/imageImport.js";
import { vmCreate } from "../handlers/vmCreate.js";
import { vmDelete } from "../handlers/vmDelete.js";
import { vmReboot, vmStart, vmStop } from "../handlers/vmPower.js";

/** Every job type a worker runs. `vm.reconcile` is only recorded, never queued. */
export const handlers: HandlerRegistry = {
  "vm.create": vmCreate,
  "vm.start": vmStart,
  "vm.stop": vmStop,
  "vm.reboot": vmReboot,
  "vm.delete": vmDelete,
  "image.import": imageImport,
  "image.export": imageExport,
  "vm.export": vmExport,
  "image.delete": imageDelete,
  "bench.noop": benchNoop,
};
