/**
 * Validation of the programmatic API's arguments: a mistake is reported as an
 * `OptionError` (a `ContractError`) naming the field and what it must be,
 * before anything is changed.
 */
import { z } from "zod";
import { ContractError, kindOf } from "../contract/errors.ts";
import { ComponentName, ExitReason } from "../contract/schemas.ts";
import { validate } from "../contract/tools.ts";
import type { ShellOptions } from "../instrumentation/types.ts";
import { OptionError } from "../option-error.ts";
import type { ShellTelemetryOptions } from "./types.ts";

const shellOptionFields = {
  component: ComponentName.optional(),
  shellType: z.string().min(1, { message: "must not be empty" }).max(200).optional(),
  version: z.string().min(1, { message: "must not be empty" }).max(100).optional(),
  adapters: z
    .array(z.string().min(1, { message: "must not be empty" }).max(100))
    .max(64)
    .optional(),
};

export const ShellOptionsSchema = z.strictObject(shellOptionFields);

const isFunction = (v: unknown) => typeof v === "function";

export const ShellTelemetryOptionsSchema = z.strictObject({
  ...shellOptionFields,
  enabled: z.boolean().optional(),
  evalSpans: z.boolean().optional(),
  captureInput: z.boolean().optional(),
  banner: z.boolean().optional(),
  redactInput: z
    .custom<(input: string) => string | undefined>(isFunction, { message: "must be a function" })
    .optional(),
  contextName: z
    .union([z.literal(false), z.string().regex(/^[A-Za-z_$][\w$]*$/, { message: "must be a JavaScript identifier" })])
    .optional(),
  serviceName: z.string().min(1, { message: "must not be empty" }).optional(),
  spanProcessors: z
    .array(
      z.custom(
        (v) =>
          typeof v === "object" &&
          v !== null &&
          isFunction((v as { onStart?: unknown }).onStart) &&
          isFunction((v as { onEnd?: unknown }).onEnd),
        { message: "must be a SpanProcessor (with onStart and onEnd)" },
      ),
    )
    .optional(),
  metricReaders: z
    .array(z.custom((v) => typeof v === "object" && v !== null, { message: "must be a MetricReader" }))
    .optional(),
});

/** Checks `input` with the contract's `validate`, then returns the caller's own object, functions and all. */
function parse<T>(schema: z.ZodType, what: string, input: unknown): T {
  try {
    validate(schema, input ?? {}, what);
  } catch (error) {
    throw error instanceof ContractError ? OptionError.fromContract(error) : error;
  }
  return input as T;
}

export function parseShellOptions(input: unknown): ShellOptions {
  return parse<ShellOptions>(ShellOptionsSchema, "trackShell options", input);
}

export function parseTelemetryOptions(input: unknown): ShellTelemetryOptions {
  return parse<ShellTelemetryOptions>(ShellTelemetryOptionsSchema, "startShellTelemetry options", input);
}

export function parseExitReason(input: unknown): ExitReason {
  const result = ExitReason.safeParse(input);
  if (!result.success) {
    throw new OptionError(
      `invalid exit reason: must be one of ${ExitReason.options.join(", ")} (received ${kindOf(input)})`,
      "reason",
      [{ field: "reason", constraint: `one of ${ExitReason.options.join(", ")}`, received: kindOf(input) }],
    );
  }
  return result.data;
}
