/**
 * Tool results are checked against the output schema the tracker lists
 * (src/exporter/client.ts, with the MCP SDK's interpreting validator): a
 * result that fits is returned, one that does not is refused rather than
 * read. Over stdio, against test/fixtures/result-schema-server.mjs, which
 * sends its results unchecked.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { McpConnection } from "../../src/exporter/client.ts";
import { createLogger } from "../../src/log.ts";

const SERVER = fileURLToPath(new URL("../fixtures/result-schema-server.mjs", import.meta.url));

test("a result that fits the listed output schema is returned; one that does not is refused", async (t) => {
  const connection = new McpConnection({
    transport: { kind: "stdio", command: process.execPath, args: [SERVER] },
    timeoutMs: 10_000,
    bearer: undefined,
    env: { PATH: process.env.PATH },
    log: createLogger("error", () => {}),
  });
  t.after(() => connection.close());
  const fits = await connection.callTool("track_session_start", { fits: true }, {});
  assert.deepEqual(fits.structuredContent, { status: "tracked", session_id: "sess_fits" });
  await assert.rejects(connection.callTool("track_session_start", { fits: false }, {}), (error: Error) => {
    assert.match(error.message, /output schema/i);
    return true;
  });
});
