export * from "./states.js";
export * from "./errors.js";
export * from "./size.js";
export * from "./resources.js";
export * from "./jobs.js";
export * from "./exitCodes.js";
export * from "./env.js";
