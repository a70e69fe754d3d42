import { createRequire } from "node:module";
import { z } from "zod";
import { API_REQUEST_SCHEMAS, API_ROUTES, API_SCHEMAS, PATH_PARAMETERS, type ApiAnswer, type ApiRoute, type Permission } from "@iaas/contracts";
import { ROUTE_PERMISSIONS } from "../auth/permissions.js";

/** A JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1) as z.toJSONSchema writes it. */
type JsonSchema = Record<string, unknown>;

export interface OpenApiDocument {
  openapi: "3.1.0";
  info: { title: string; version: string; description: string; license: { name: string; identifier: string } };
  jsonSchemaDialect: string;
  servers: { url: string }[];
  tags: { name: string; description: string }[];
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, unknown>;
    securitySchemes: Record<string, unknown>;
  };
}

interface Operation {
  operationId: string;
  summary: string;
  description: string;
  tags: string[];
  security?: Record<string, string[]>[];
  "x-iaas-permission"?: Permission;
  parameters?: unknown[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
}

const PROBLEM_TYPE = "application/problem+json";
const SCHEMA_REF = "#/components/schemas/";

const TAGS: Record<string, string> = {
  health: "Liveness and readiness probes (no token needed)",
  docs: "This document and its browsable page (no token needed)",
  observability: "Prometheus metrics (no API token; IAAS_METRICS_TOKEN when set)",
  vms: "Virtual machines: every change is a job",
  snapshots: "Internal qcow2 snapshots of a VM",
  backups: "Backups in the shared store, their schedules and restores",
  networks: "Networks, NICs, port forwards and guest port probes",
  images: "Disk images: imports, resumable uploads, verification",
  exports: "Images and VM disks converted to downloadable files",
  jobs: "Jobs: state, long-poll wait, Server-Sent Events, cancel",
  hosts: "Hypervisor hosts: capacity, drain, evacuation",
  tenancy: "Projects, API tokens, the audit trail",
  bench: "Benchmark endpoint (only with IAAS_ENABLE_BENCH_JOBS=true)",
};

const ROLE_OF: Record<Permission, string> = { read: "viewer", operate: "operator", admin: "admin (a token not scoped to a project)" };

/** `/v1/vms/:ref` → `/v1/vms/{ref}`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z]+)/g, "{$1}");
}

/** `GET /v1/vms/:ref/snapshots` → `getVmsRefSnapshots`. */
function operationId(route: ApiRoute): string {
  const words = route.path
    .replace(/^\/v1\//, "/")
    .split(/[/-]/)
    .filter(Boolean)
    .map((w) => w.replace(/^:/, ""));
  return route.method.toLowerCase() + words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join("");
}

function withoutDialect(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}

/** Components for named schemas, in one direction: answers as the API writes them, requests as it reads them. */
function components(named: Record<string, z.ZodType>, io: "input" | "output"): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(named)) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, { io, uri: (id) => `${SCHEMA_REF}${id}`, unrepresentable: "any" }) as { schemas: Record<string, JsonSchema> };
  return Object.fromEntries(Object.entries(out.schemas).map(([id, schema]) => [id, withoutDialect(schema)]));
}

/**
 * The OpenAPI 3.1 document of the API, generated from the contracts' route catalog (API_ROUTES)
 * and schemas; ROUTE_PERMISSIONS says which role each `/v1` route needs.
 */
export function buildOpenApiDocument(permissions: Readonly<Record<string, Permission>> = ROUTE_PERMISSIONS): OpenApiDocument {
  const names = new Map<z.ZodType, string>();
  for (const [id, schema] of [...Object.entries(API_SCHEMAS), ...Object.entries(API_REQUEST_SCHEMAS)]) names.set(schema, id);
  const schemaOf = (schema: z.ZodType, io: "input" | "output"): JsonSchema => {
    const id = names.get(schema);
    return id !== undefined ? { $ref: `${SCHEMA_REF}${id}` } : withoutDialect(z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema);
  };
  const answer = (a: ApiAnswer): unknown => ({
    description: a.description,
    ...(a.headers ? { headers: Object.fromEntries(Object.entries(a.headers).map(([h, d]) => [h, { description: d, schema: { type: "string" } }])) } : {}),
    ...(a.schema ? { content: { [a.contentType ?? "application/json"]: { schema: schemaOf(a.schema, "output") } } } : {}),
  });

  const paths: OpenApiDocument["paths"] = {};
  for (const route of API_ROUTES) {
    const permission = route.public ? undefined : permissions[`${route.method} ${route.path}`];
    if (!route.public && permission === undefined) throw new Error(`${route.method} ${route.path} is in the API catalog but has no permission rule`);
    const parameters: unknown[] = [];
    for (const [, name] of route.path.matchAll(/:([A-Za-z]+)/g)) {
      parameters.push({ name, in: "path", required: true, description: PATH_PARAMETERS[name ?? ""] ?? name, schema: { type: "string" } });
    }
    for (const [name, schema] of Object.entries(route.query?.shape ?? {})) {
      const field = schema as z.ZodType;
      parameters.push({ name, in: "query", required: !field.safeParse(undefined).success, schema: schemaOf(field, "input") });
    }
    for (const [name, description] of Object.entries(route.headers ?? {})) {
      parameters.push({ name, in: "header", required: false, description, schema: { type: "string" } });
    }
    const bodyRequired = route.body !== undefined && !route.body.safeParse(undefined).success && !route.body.safeParse({}).success;
    const operation: Operation = {
      operationId: operationId(route),
      summary: route.summary,
      description: permission ? `${route.description}\n\nNeeds the ${ROLE_OF[permission]} role.` : route.description,
      tags: [route.tag],
      ...(route.public ? { security: [] } : {}),
      ...(permission ? { "x-iaas-permission": permission } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(route.body
        ? { requestBody: { required: bodyRequired || route.bodyContentType !== undefined, content: { [route.bodyContentType ?? "application/json"]: { schema: schemaOf(route.body, "input") } } } }
        : {}),
      responses: {
        ...Object.fromEntries(Object.entries(route.responses).map(([status, a]) => [status, answer(a)])),
        "4XX": { $ref: "#/components/responses/Problem" },
        "5XX": { $ref: "#/components/responses/Problem" },
      },
    };
    (paths[openApiPath(route.path)] ??= {})[route.method.toLowerCase()] = operation;
  }

  return {
    openapi: "3.1.0",
    info: {
      title: "Minimal IaaS Manager API",
      version: apiVersion(),
      description:
        "Every change is a durable job: requests that make one answer `202 Accepted` with `Location: /v1/jobs/<id>`. " +
        "Errors are `application/problem+json` (RFC 9457) with a stable `code` and a `hint`. " +
        "Generated from the zod schemas of `packages/contracts`.",
      license: { name: "MIT", identifier: "MIT" },
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    servers: [{ url: "/" }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: { ...components(API_SCHEMAS, "output"), ...components(API_REQUEST_SCHEMAS, "input") },
      responses: {
        Problem: {
          description: "An error: RFC 9457 problem details with a stable `code` and a `hint` saying what to do next",
          content: { [PROBLEM_TYPE]: { schema: { $ref: `${SCHEMA_REF}Problem` } } },
        },
      },
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "An API token (`iaas token create`); not needed when the API runs with IAAS_AUTH=none (loopback only)",
        },
      },
    },
  };
}

function apiVersion(): string {
  const pkg = createRequire(import.meta.url)("../../package.json") as { version?: unknown };
  return typeof pkg.version === "string" ? pkg.version : "0.0.0";
}

let cached: OpenApiDocument | undefined;

/** The document, built once per process. */
export function openApiDocument(): OpenApiDocument {
  cached ??= buildOpenApiDocument();
  return cached;
}
