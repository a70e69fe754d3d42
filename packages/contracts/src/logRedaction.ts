/**
 * pino `redact` paths for every service's logger: credentials never reach a log line, even when
 * a request, its headers or a config object is logged whole. `*` matches one level, so
 * `*.token` covers `{ body: { token } }` and `{ auth: { token } }`; the idempotency key is not
 * secret and stays readable.
 */
export const LOG_REDACT_PATHS: readonly string[] = [
  "authorization",
  "headers.authorization",
  "headers.cookie",
  'headers["proxy-authorization"]',
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["proxy-authorization"]',
  "request.headers.authorization",
  "*.headers.authorization",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "apiToken",
  "*.apiToken",
  "IAAS_API_TOKEN",
  "*.IAAS_API_TOKEN",
];

/** What a redacted value prints as. */
export const LOG_REDACT_CENSOR = "[Redacted]";
