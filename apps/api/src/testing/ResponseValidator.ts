import type { RequestHandler } from "express";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import type { OpenApiDocument } from "../openapi/openApiDocument.js";

const DOC_ID = "iaas-openapi";
const PROBLEM_TYPE = "application/problem+json";

interface PathMatcher {
  template: string;
  pattern: RegExp;
}

/**
 * Checks JSON answers against the OpenAPI document: the operation for the request's method and
 * path, the answer for its status, the schema for its content type. Used by the API's tests
 * (testing/testApi.ts mounts `middleware()` in front of the app), so an answer the document does
 * not describe fails the test that caused it.
 */
export class ResponseValidator {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly paths: PathMatcher[];
  /** `METHOD /template STATUS` of every answer checked, and what failed. */
  readonly checked = new Set<string>();
  readonly mismatches: string[] = [];

  constructor(private readonly doc: OpenApiDocument) {
    this.ajv.addSchema({ $id: DOC_ID, components: doc.components }, DOC_ID);
    // Templates without parameters first, so `/v1/jobs` is not read as a parameter of another.
    this.paths = Object.keys(doc.paths)
      .sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0))
      // As Express routes: case-insensitive, trailing slashes allowed.
      .map((template) => ({ template, pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[A-Za-z]+\\?\}/g, "[^/]+")}/*$`, "i") }));
  }

  /** The document's path template for a request path, or null. */
  templateOf(pathname: string): string | null {
    return this.paths.find((p) => p.pattern.test(pathname))?.template ?? null;
  }

  /** Why `body` is not what the document says `METHOD path` answers with `status`, or null when it is. */
  check(method: string, pathname: string, status: number, contentType: string, body: unknown): string | null {
    const template = this.templateOf(pathname);
    const where = `${method} ${template ?? pathname} ${status}`;
    const mediaType = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
    let schema: unknown;
    if (status >= 400) {
      // Every error is a problem, whatever the route (unknown routes too).
      if (mediaType !== PROBLEM_TYPE) return `${where}: an error answered ${mediaType || "no content type"}, not ${PROBLEM_TYPE}`;
      schema = { $ref: "#/components/schemas/Problem" };
    } else {
      if (template === null) return `${method} ${pathname} ${status}: no path of the OpenAPI document matches`;
      const operations = this.doc.paths[template];
      // Express answers HEAD with its GET route (headers only).
      const operation = operations?.[method.toLowerCase()] ?? (method === "HEAD" ? operations?.["get"] : undefined);
      if (!operation) return `${where}: the document has no ${method} operation on ${template}`;
      const answer = operation.responses[String(status)] as { content?: Record<string, { schema: unknown }> } | undefined;
      if (!answer) return `${where}: status ${status} is not documented (documented: ${Object.keys(operation.responses).join(", ")})`;
      schema = answer.content?.[mediaType]?.schema;
      if (schema === undefined) return `${where}: the document gives no ${mediaType} body for it`;
    }
    this.checked.add(where);
    const validate = this.validatorFor(schema);
    if (validate(JSON.parse(JSON.stringify(body)) as unknown)) return null;
    const errors = (validate.errors ?? []).slice(0, 5).map((e) => `${e.instancePath || "(body)"} ${e.message ?? "is invalid"}${e.params && "additionalProperty" in e.params ? ` '${String(e.params.additionalProperty)}'` : ""}`);
    return `${where}: the answer does not match the OpenAPI document: ${errors.join("; ")}`;
  }

  private validatorFor(schema: unknown): ValidateFunction {
    const text = JSON.stringify(schema).replaceAll('"$ref":"#/', `"$ref":"${DOC_ID}#/`);
    let found = this.compiled.get(text);
    if (!found) {
      found = this.ajv.compile(JSON.parse(text) as object);
      this.compiled.set(text, found);
    }
    return found;
  }

  /**
   * Express middleware checking every `res.json` answer; one that does not match is recorded in
   * `mismatches` and replaced by a 500 problem naming the mismatch, so the request's test fails.
   */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const send = res.json.bind(res);
      res.json = (body: unknown) => {
        const contentType = String(res.getHeader("content-type") ?? "application/json");
        const problem = this.check(req.method, new URL(req.originalUrl, "http://api").pathname, res.statusCode, contentType, body);
        if (problem === null) return send(body);
        this.mismatches.push(problem);
        res.status(500).type(PROBLEM_TYPE);
        return send({ type: "about:blank", title: "Answer does not match the OpenAPI document", status: 500, detail: problem, code: "INTERNAL", hint: "fix the route or its schema in packages/contracts" });
      };
      next();
    };
  }
}
