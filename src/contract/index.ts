export * from "./errors.ts";
export * from "./result.ts";
export * from "./sanitize.ts";
export * from "./schemas.ts";
export * from "./tools.ts";
