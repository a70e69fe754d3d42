// Minimal JSON over HTTP with a keep-alive agent (no extra dependencies), and a streamed file PUT.
import { createReadStream } from "node:fs";
import http from "node:http";

export function createClient(baseUrl, maxSockets = 32) {
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  const request = (method, path, body) =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        new URL(path, baseUrl),
        { method, agent, headers: data ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) } : {} },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString();
            let json;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode, json, text });
          });
          res.on("error", reject);
        },
      );
      req.on("error", (err) => reject(new Error(`${method} ${path}: ${err.message}`, { cause: err })));
      req.end(data);
    });
  return {
    get: (path) => request("GET", path),
    post: (path, body) => request("POST", path, body),
    del: (path) => request("DELETE", path),
    close: () => agent.destroy(),
  };
}

/**
 * PUTs a file as the request body, streamed from disk (1 MiB reads, never buffered whole), with
 * its Content-Length; resolves with the JSON answer once the server has replied.
 */
export function putFile(url, file, size) {
  return new Promise((resolve, reject) => {
    const fail = (err) => reject(new Error(`PUT ${url}: ${err.message}`, { cause: err }));
    const req = http.request(url, { method: "PUT", headers: { "content-type": "application/octet-stream", "content-length": size } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, json, text });
      });
      res.on("error", fail);
    });
    req.on("error", fail);
    const body = createReadStream(file, { highWaterMark: 1024 * 1024 });
    body.on("error", (err) => req.destroy(err));
    body.pipe(req);
  });
}

/** Polls `fn` every `intervalMs` until it returns a truthy value; throws `what` after `timeoutMs`. */
export async function waitFor(what, fn, { timeoutMs = 30_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
