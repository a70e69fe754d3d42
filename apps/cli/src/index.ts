export { runCli, buildProgram } from "./program.js";
export type { CliDeps } from "./commands/CommandContext.js";
export { CliError } from "./CliError.js";
export {
  ApiClient,
  VmPlan,
  type ApiClientOptions,
  type AuditFilter,
  type ExportInput,
  type ImageCreated,
  type ImageCreateInput,
  type JobFilter,
  type NetworkCreateInput,
  type NicInput,
  type PortForwardInput,
  type ProjectQuotaInput,
  type TokenCreateInput,
  type UploadAnswer,
  type VmCreateInput,
  type VmProbeInput,
} from "./client/ApiClient.js";
export { runInheritingStdio, type RunProcess } from "./runProcess.js";
export { uploadImageFile, type UploadOptions, type RetryNotice } from "./client/uploadFile.js";
export { downloadFile, type DownloadOptions, type DownloadResult } from "./client/downloadFile.js";
export { SseParser, readSseEvents, type SseEvent } from "./client/sse.js";
export { followJob, type FollowJobOptions, type FollowJobResult } from "./follow/followJob.js";
export { resolveConfig, type ResolvedConfig } from "./config.js";
