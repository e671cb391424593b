/**
 * The default redaction of captured shell inputs.
 *
 * Input capture is off unless switched on; when on, every input passes
 * through a redactor first. This one masks what looks like a credential:
 * JWTs, `Authorization` header values, `password=` / `secret:` style
 * assignments, credentials in URLs, private key blocks, well-known token
 * formats (AWS, GitHub, Slack, Google, `sk-` keys) and long hex or base64
 * runs. It cannot recognise a password passed as a bare positional argument
 * (`login("admin", "hunter2")`), which is why capture stays opt-in.
 */
import type { InputRedactor } from "./types.ts";

export const REDACTED = "[REDACTED]";

const SENSITIVE_KEY =
  "(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth(?:orization)?|credentials?|private[_-]?key|client[_-]?secret|session[_-]?(?:key|token)|cookie)";

/** Each rule replaces the secret part of its match and keeps the rest, so the input stays readable. */
const RULES: Array<[RegExp, (match: string, ...groups: string[]) => string]> = [
  [/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g, () => REDACTED],
  // Credentials embedded in a URL: scheme://user:password@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@'"`]+:)[^\s@/'"`]+@/gi, (_m, head) => `${head}${REDACTED}@`],
  // HTTP authorization schemes followed by their credentials.
  [/\b(Bearer|Basic|Digest|Token)(\s+)[A-Za-z0-9._~+/=-]{6,}/gi, (_m, scheme, space) => `${scheme}${space}${REDACTED}`],
  // JWTs (three base64url parts, the first a JSON header).
  [/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, () => REDACTED],
  // key = value, key: value, "key": "value", key=value in query strings; an unquoted value that is
  // a call (`tokens = text.split(" ")`) is code, not a secret, and stays.
  [
    new RegExp(
      `(${SENSITIVE_KEY}[A-Za-z0-9_-]*["'\`]?\\s*[:=]\\s*)(?:(["'\`])(?:\\\\.|(?!\\2)[^\\\\])*\\2|(?=([^\\s,;&(){}\\[\\]'"\`]+))\\3(?!\\())`,
      "gi",
    ),
    (_m, head, quote) => (quote ? `${head}${quote}${REDACTED}${quote}` : `${head}${REDACTED}`),
  ],
  // Well-known token formats.
  [/\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g, () => REDACTED],
  [/\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})/g, () => REDACTED],
  [/\bxox[abprs]-[A-Za-z0-9-]{10,}/g, () => REDACTED],
  [/\bAIza[0-9A-Za-z_-]{30,}/g, () => REDACTED],
  [/\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}/g, () => REDACTED],
  [/\bsk-[A-Za-z0-9_-]{16,}/g, () => REDACTED],
  // Long hex runs (keys, hashes of secrets, session ids).
  [/\b[0-9a-fA-F]{32,}\b/g, () => REDACTED],
  // Long base64 / base64url runs that mix letters and digits (AWS secret keys, random tokens).
  [/[A-Za-z0-9+/_-]{32,}={0,2}/g, (match) => (/[0-9]/.test(match) && /[A-Za-z]/.test(match) ? REDACTED : match)],
];

/** Masks anything in `input` that looks like a token, key or password. */
export const defaultRedact: InputRedactor = (input) => {
  let out = input;
  for (const [pattern, replace] of RULES) {
    out = out.replace(pattern, replace as (substring: string, ...args: unknown[]) => string);
  }
  return out;
};

/** Applies `redactor`; a redactor that throws or returns a non-string records nothing. */
export function applyRedactor(redactor: InputRedactor, input: string): string | undefined {
  try {
    const out = redactor(input);
    return typeof out === "string" ? out : undefined;
  } catch {
    return undefined;
  }
}
