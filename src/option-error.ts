/**
 * The one error for a setting or an option that cannot be used, whoever
 * reads it: the tracker's flags, variables and options, delivery's
 * variables, the options of `trackShell` and `startShellTelemetry`. Its
 * message names the setting and the fix; `source` names the setting alone.
 * It is a ContractError (`invalid_argument`, with `issues` where the field
 * and its constraint are known), so one catch serves bad input of every kind.
 */
import { ContractError, type FieldIssue } from "./contract/errors.ts";

export class OptionError extends ContractError {
  override readonly name: string = "OptionError";
  readonly source: string | undefined;

  constructor(message: string, source?: string, issues: FieldIssue[] = []) {
    super("invalid_argument", message, issues);
    this.source = source;
  }

  /** A contract error about options, as an OptionError naming its first field. */
  static fromContract(error: ContractError): OptionError {
    return new OptionError(error.message, error.issues[0]?.field, error.issues);
  }
}
