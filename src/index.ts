/** otel-shell-sessions: the programmatic API. */
export * as contract from "./contract/index.ts";
