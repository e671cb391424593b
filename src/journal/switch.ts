/** `SHELL_SESSIONS_DELIVERY=off` (or 0, false, no, disabled): the one switch that turns delivery, and so the journal, off. */
export function isDeliveryOff(value: string | undefined): boolean {
  return value !== undefined && /^(off|0|false|no|disabled?)$/i.test(value.trim());
}
