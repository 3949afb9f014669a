// One session of the official TypeScript SDK client across two `wrangler
// dev` processes (run by e2e/mcp_isolates_test.go). Every request goes to
// the broker named in AMS_TARGET_FILE, whatever host the link has. Phase 1
// joins and sends, and prints {"phase":1,...}; after a line on stdin (the
// test restarted the broker over the same state) phase 2 sends and reads
// with no handle, and prints {"phase":2,...}. A failed call exits non-zero.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { AMS_LINK, AMS_TARGET_FILE } = process.env;
if (!AMS_LINK || !AMS_TARGET_FILE) throw new Error("AMS_LINK and AMS_TARGET_FILE are required");

function follow(input, init) {
  const target = new URL(readFileSync(AMS_TARGET_FILE, "utf8").trim());
  const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
  url.protocol = target.protocol;
  url.host = target.host;
  return fetch(url, init);
}

async function call(client, name, args) {
  const res = await client.callTool({ name, arguments: args });
  if (res.isError) {
    console.error("FAIL:", name, JSON.stringify(res.structuredContent));
    process.exit(1);
  }
  return res.structuredContent;
}

const client = new Client({ name: "TS Isolated", version: "1.0.0" });
// Every token notification, however it came (GET leg, ride-along, an
// ams_recv answered as an event stream): the test checks none came twice.
const pushed = [];
client.fallbackNotificationHandler = async (n) => {
  if (n.method === "notifications/ams/token") pushed.push(n.params.data);
};
const transport = new StreamableHTTPClientTransport(new URL(AMS_LINK), { fetch: follow });
await client.connect(transport);
const joined = await call(client, "ams_join", {});
await call(client, "ams_send", { data: "ts from the first isolate" });
console.log(JSON.stringify({ phase: 1, name: joined.stream_name }));

const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;

const sent = await call(client, "ams_send", { data: "ts from the second isolate" });
const read = await call(client, "ams_recv", { wait_ms: 10000 });
console.log(JSON.stringify({ phase: 2, rejoined: sent.rejoined === true, frames: read.frames, pushed }));
await client.close();
process.exit(0);
