let container: Promise<string> | undefined;

/**
 * A Redis URL for integration tests: REDIS_URL when set, otherwise a Redis container started once
 * per process (testcontainers' reaper removes it when the process exits).
 */
export function testRedisUrl(): Promise<string> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) return Promise.resolve(fromEnv);
  container ??= (async () => {
    try {
      const { RedisContainer } = await import("@testcontainers/redis");
      const started = await new RedisContainer("redis:7-alpine").start();
      return started.getConnectionUrl();
    } catch (err) {
      container = undefined;
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(
        `testRedisUrl: REDIS_URL is not set and a Redis container could not be started (${reason}). ` +
          "Set REDIS_URL, e.g. REDIS_URL=redis://127.0.0.1:6379",
        { cause: err },
      );
    }
  })();
  return container;
}
