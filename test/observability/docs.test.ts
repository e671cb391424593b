/**
 * The documentation cannot fall behind the code silently: every environment
 * variable the source reads and every flag a command accepts is in
 * docs/configuration.md (with the defaults the code really uses), nothing
 * documented there is made up, and every link between the docs resolves.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../../src/cli/registry.ts";
import { DEFAULTS, ENV } from "../../src/exporter/options.ts";
import { DEFAULT_HOST, DEFAULT_LEASE_SECONDS, DEFAULT_PORT } from "../../src/server/options.ts";
import { openStore } from "../../src/store/index.ts";
import { envReferences } from "./collector-validate.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOCS = join(ROOT, "docs");
const configuration = readFileSync(join(DOCS, "configuration.md"), "utf8");

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => f.endsWith(suffix) && statSync(f).isFile());
}

const sources = filesUnder(join(ROOT, "src"), ".ts").map((f) => ({
  file: relative(ROOT, f),
  text: readFileSync(f, "utf8"),
}));

/**
 * Variables the source reads: a quoted name with one of our prefixes (the
 * option tables keep names in constants), or any `env.NAME` / `env["NAME"]`.
 */
function envVarsReadBySource(): Map<string, string> {
  const found = new Map<string, string>();
  for (const { file, text } of sources) {
    for (const m of text.matchAll(/["'`]((?:SHELL_SESSIONS|SESSION_BUDDY|OTEL)_[A-Z0-9_]+)["'`]/g))
      found.set(m[1] as string, file);
    for (const m of text.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]+)\b|\[["']([A-Z][A-Z0-9_]+)["']\])/g)) {
      found.set((m[1] ?? m[2]) as string, file);
    }
  }
  return found;
}

/** Rows of the Markdown tables whose first cell is a backticked name: name → cells. */
function tableRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of markdown.split("\n")) {
    const m = /^\| `([^`]+)` \|/.exec(line);
    // The first table that names a setting is its own; later ones refer back to it.
    if (!m || rows.has(m[1] as string)) continue;
    rows.set(
      m[1] as string,
      line
        .split("|")
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

const rows = tableRows(configuration);
const documentedVars = [...rows.keys()].filter((k) => /^[A-Z][A-Z0-9_]+$/.test(k));

describe("docs/configuration.md", () => {
  it("documents every environment variable the source reads", () => {
    const read = envVarsReadBySource();
    assert.ok(read.size > 20, `found only ${read.size} variables: the search is broken`);
    for (const [name, file] of read) {
      assert.ok(documentedVars.includes(name), `${name} (read in ${file}) is not in a table of docs/configuration.md`);
    }
  });

  it("documents only variables that exist", () => {
    const ownText = [
      ...sources.map((s) => s.text),
      ...["otel-collector.yaml", "otel-collector-agent.yaml", "otel-collector-gateway.yaml"].map((f) =>
        readFileSync(join(ROOT, f), "utf8"),
      ),
    ].join("\n");
    const sdkText = ["sdk-node", "core", "exporter-prometheus", "otlp-exporter-base", "sdk-trace", "sdk-metrics"]
      .flatMap((pkg) => filesUnder(join(ROOT, "node_modules/@opentelemetry", pkg, "dist"), ".mjs"))
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    for (const name of documentedVars) {
      const known =
        ownText.includes(name) || (name.startsWith("OTEL_") && sdkText.includes(name)) || name === "XDG_STATE_HOME";
      assert.ok(known, `${name} is documented but neither this package nor the OpenTelemetry SDK reads it`);
    }
  });

  it("documents every variable otel-collector.yaml reads, with its default", () => {
    const yaml = readFileSync(join(ROOT, "otel-collector.yaml"), "utf8");
    for (const { name, fallback } of envReferences(yaml)) {
      const row = rows.get(name);
      assert.ok(row, `${name} is not documented`);
      assert.equal(row[1], `\`${fallback}\``, `${name}'s documented default`);
    }
  });

  it("gives the delivery settings the defaults the code uses", () => {
    for (const [key, variable] of Object.entries(ENV)) {
      if (!(key in DEFAULTS)) continue;
      const row = rows.get(variable);
      assert.ok(row, `${variable} is not documented`);
      const value = DEFAULTS[key as keyof typeof DEFAULTS];
      assert.ok(
        row[1]?.startsWith(`\`${value}\``),
        `${variable}: the code's default is ${value}, the docs say ${row[1]}`,
      );
    }
  });

  it("gives the tracker the defaults the code uses", () => {
    assert.equal(rows.get("--host HOST")?.[1], `\`${DEFAULT_HOST}\``);
    assert.equal(rows.get("--port PORT")?.[1], `\`${DEFAULT_PORT}\``);
    assert.match(rows.get("--lease SECONDS")?.[1] ?? "", new RegExp(`\`${DEFAULT_LEASE_SECONDS}\``));
    assert.equal(rows.get("SHELL_SESSIONS_LEASE_SECONDS")?.[1], `\`${DEFAULT_LEASE_SECONDS}\``);
  });

  for (const command of Object.keys(COMMANDS)) {
    it(`documents every flag of shell-sessions ${command}`, () => {
      const source = readFileSync(join(ROOT, "src/cli/commands", `${command}.ts`), "utf8");
      const flags = [
        ...source.matchAll(
          /["']?([a-z][a-z-]*)["']?\s*:\s*\{\s*type:\s*"(?:string|boolean)"(?:,\s*default:\s*(true))?/g,
        ),
      ]
        .filter((m) => m[1] !== "help")
        .map((m) => (m[2] === "true" ? `--no-${m[1]}` : `--${m[1]}`));
      assert.ok(flags.length > 0, `found no flags in src/cli/commands/${command}.ts: the search is broken`);
      const heading = `### \`shell-sessions ${command}\``;
      const start = configuration.indexOf(heading);
      assert.ok(start >= 0, `no "${heading}" section`);
      const end = configuration.slice(start + heading.length).search(/\n##/);
      const section = configuration.slice(start, end < 0 ? undefined : start + heading.length + end);
      for (const flag of flags) assert.ok(section.includes(`\`${flag}`), `${flag} is not in the ${heading} section`);
    });
  }
});

describe("docs/security.md", () => {
  it("gives SQL to remove old records that runs on the SQLite store", async (t) => {
    const guide = readFileSync(join(DOCS, "security.md"), "utf8");
    const sqlite = guide.slice(guide.indexOf("SQLite (`sqlite3"));
    const statements = /```sql\n([\s\S]*?)```/.exec(sqlite)?.[1];
    assert.ok(statements, "docs/security.md has the SQLite statements");
    const dir = mkdtempSync(join(tmpdir(), "otel-shell-sessions-retention-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "tracker.db");
    await (await openStore(`sqlite:${file}`)).close();
    const db = new DatabaseSync(file);
    try {
      db.exec(statements);
    } finally {
      db.close();
    }
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(
      (m[1] as string)
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    );
  }
  return out;
}

describe("links in the documentation", () => {
  const pages = [join(ROOT, "README.md"), ...filesUnder(DOCS, ".md")];

  it("the README's Documentation section links every page under docs/", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Documentation"));
    assert.ok(readme.includes("## Documentation"), "README.md has no Documentation section");
    for (const page of filesUnder(DOCS, ".md")) {
      const link = relative(ROOT, page);
      assert.ok(section.includes(`](${link})`), `README.md's Documentation section does not link ${link}`);
    }
  });

  for (const page of pages) {
    it(`every relative link of ${relative(ROOT, page)} resolves`, () => {
      const text = readFileSync(page, "utf8").replace(/```[\s\S]*?```/g, "");
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1] as string;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split("#") as [string, string | undefined];
        const file = path === "" ? page : resolve(dirname(page), path);
        assert.ok(existsSync(file), `${relative(ROOT, page)} links ${target}, which does not exist`);
        if (anchor !== undefined && file.endsWith(".md")) {
          assert.ok(
            anchors(readFileSync(file, "utf8")).has(anchor),
            `${relative(ROOT, page)} links ${target}, but ${relative(ROOT, file)} has no such heading`,
          );
        }
      }
    });
  }
});
