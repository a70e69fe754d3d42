export { runCli, buildProgram } from "./program.js";
export type { CliDeps } from "./commands/CommandContext.js";
export { CliError } from "./CliError.js";
export { ApiClient, type ApiClientOptions, type JobFilter, type VmCreateInput } from "./client/ApiClient.js";
export { JobAccepted } from "./client/JobAccepted.js";
export { SseParser, readSseEvents, type SseEvent } from "./client/sse.js";
export { followJob, type FollowJobOptions, type FollowJobResult } from "./follow/followJob.js";
export { resolveConfig, type ResolvedConfig } from "./config.js";
