/**
 * The one error for a setting that cannot be used, whoever reads it (the
 * tracker's flags and variables, the exporter's variables): the message
 * names where the value came from and the fix, and `source` names the flag,
 * variable or field alone, for callers that report it apart.
 */
export class OptionError extends Error {
  override readonly name = "OptionError";
  readonly source: string | undefined;
  constructor(message: string, source?: string) {
    super(message);
    this.source = source;
  }
}
