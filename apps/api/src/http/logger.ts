import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";
import { LOG_REDACT_CENSOR, LOG_REDACT_PATHS } from "@iaas/contracts";

/** pino options of the API's logger: credentials (Authorization, tokens, secrets) print as `[Redacted]`. */
export function loggerOptions(level: string): LoggerOptions {
  return { level, base: { service: "api" }, redact: { paths: [...LOG_REDACT_PATHS], censor: LOG_REDACT_CENSOR } };
}

/** The API's logger (stdout unless `destination` is given). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return destination ? pino(loggerOptions(level), destination) : pino(loggerOptions(level));
}
