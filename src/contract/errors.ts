/**
 * The structured error every tool answers with, and the conversion of zod
 * issues into it.
 *
 * An error names the field, the constraint and the *kind* of value received,
 * never the value itself: a payload may carry a token or a password in any
 * field, and error text ends up in logs and spans.
 */
import { z } from "zod";

export const ErrorCode = z.enum([
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "payload_too_large",
  "unavailable",
  "internal",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export const FieldIssue = z.object({
  field: z.string(),
  constraint: z.string(),
  received: z.string(),
});
export type FieldIssue = z.infer<typeof FieldIssue>;

/** Fields our server adds to every error result (the real Session-Buddy sends only `error`). */
export const ErrorDetail = {
  code: ErrorCode.optional(),
  issues: z.array(FieldIssue).optional(),
};

export const MAX_ERROR_LENGTH = 1000;
export const MAX_ISSUES = 20;
const MAX_FIELD_LENGTH = 120;

/** Kind of a JSON-ish value, for error messages that must not echo the value. */
export function kindOf(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    return Number.isInteger(value) ? "an integer" : "a number";
  }
  if (typeof value === "string") return value.length === 0 ? "an empty string" : "a string";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    if (!Object.hasOwn(current, key)) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function fieldName(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(arguments)";
  const name = path
    .map((p) => (typeof p === "number" ? `[${p}]` : String(p)))
    .join(".")
    .replace(/\.\[/g, "[");
  // Field names come from the payload's own keys (in records): keep them printable and short.
  const printable = name.replace(/[\p{Cc}\p{Cf}]/gu, "?");
  return printable.length > MAX_FIELD_LENGTH ? `${printable.slice(0, MAX_FIELD_LENGTH)}…` : printable;
}

function constraintOf(issue: z.core.$ZodIssue, received: unknown): string {
  if (received === undefined) {
    const detail = issue.code === "invalid_type" ? "" : ` and ${plain(issue.message)}`;
    return `is required${detail}`;
  }
  if (issue.code === "invalid_type") {
    return `must be ${issue.expected === "int" ? "an integer" : `of type ${issue.expected}`}`;
  }
  return plain(issue.message);
}

function plain(message: string): string {
  return message.replace(/^Invalid input: /, "").replace(/^Invalid string: /, "");
}

export function issuesFromZod(error: z.ZodError, input: unknown): FieldIssue[] {
  return error.issues.slice(0, MAX_ISSUES).map((issue) => {
    const received = valueAt(input, issue.path);
    return {
      field: fieldName(issue.path),
      constraint: constraintOf(issue, received),
      received: kindOf(received),
    };
  });
}

export function describeIssues(issues: readonly FieldIssue[], total = issues.length): string {
  const parts = issues.map((i) => `${i.field}: ${i.constraint} (received ${i.received})`);
  if (total > issues.length) parts.push(`and ${total - issues.length} more`);
  return capLength(parts.join("; "));
}

export function capLength(text: string, max = MAX_ERROR_LENGTH): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The one error type contract validation throws. */
export class ContractError extends Error {
  override readonly name: string = "ContractError";
  readonly code: ErrorCode;
  readonly issues: FieldIssue[];

  constructor(code: ErrorCode, message: string, issues: FieldIssue[] = []) {
    super(capLength(message));
    this.code = code;
    this.issues = issues;
  }

  static fromZod(what: string, error: z.ZodError, input: unknown): ContractError {
    const issues = issuesFromZod(error, input);
    return new ContractError(
      "invalid_argument",
      `invalid ${what}: ${describeIssues(issues, error.issues.length)}`,
      issues,
    );
  }

  /** The fields an error result carries on the wire. */
  toResult(): { status: "error"; error: string; code: ErrorCode; issues?: FieldIssue[] } {
    return {
      status: "error",
      error: this.message,
      code: this.code,
      ...(this.issues.length > 0 ? { issues: this.issues } : {}),
    };
  }
}
