/**
 * Reading a setting's text (a flag or an environment variable) through a zod
 * schema, for the tracker and delivery alike: the value, or an OptionError
 * that names the setting and the fix.
 */
import { z } from "zod";
import { OptionError } from "./option-error.ts";

/** A whole number from `min` to `max`: the rule for counts, sizes and milliseconds, given as text or in code. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z.number().int().min(min).max(max);
}

/** Digits only, as a number: "1e3", "0x10", "-1" and " " are not counts. */
export const digits = z.string().trim().regex(/^\d+$/).transform(Number);

/** A decimal number, fractions allowed. */
export const decimal = z
  .string()
  .trim()
  .min(1)
  .transform(Number)
  .pipe(z.number().refine((n) => Number.isFinite(n)));

/** `text` through `schema`: the value, or an OptionError with `message` (which names the setting and gives the fix). */
export function settingFrom<T>(schema: z.ZodType<T>, text: string, message: string, source: string): T {
  const result = schema.safeParse(text);
  if (!result.success) throw new OptionError(message, source);
  return result.data;
}

/** A whole number from `min` to `max`, in plain words when it is not one. */
export function parseCount(text: string, source: string, min: number, max: number): number {
  return settingFrom(
    digits.pipe(wholeNumber(min, max)),
    text,
    `${source} must be a whole number from ${min} to ${max}`,
    source,
  );
}
