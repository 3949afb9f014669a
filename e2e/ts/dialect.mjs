// The hosted reference's MCP dialect driven by the official TypeScript SDK
// client (what Claude Code and Cursor embed), against the broker at
// AMS_URL with the conversation AMS_LINK. Run by e2e/mcp_ts_test.go, which
// watches the same conversation from a WebSocket. Each check that fails
// exits non-zero with the reason; the last line is a JSON summary.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const { AMS_URL, AMS_LINK } = process.env;
if (!AMS_URL || !AMS_LINK) throw new Error("AMS_URL and AMS_LINK are required");

function fail(message, detail) {
  console.error("FAIL:", message, detail === undefined ? "" : JSON.stringify(detail));
  process.exit(1);
}
function check(ok, message, detail) {
  if (!ok) fail(message, detail);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function connect(endpoint, name) {
  const client = new Client({ name, version: "1.0.0" });
  const notes = [];
  client.fallbackNotificationHandler = async (n) => {
    notes.push({ ...n, at: Date.now() });
  };
  const transport = new StreamableHTTPClientTransport(new URL(endpoint));
  await client.connect(transport);
  return { client, transport, notes };
}

// call runs a tool; a result must be a success unless wantError names its code.
async function call(c, name, args, wantError) {
  const res = await c.client.callTool({ name, arguments: args });
  const out = res.structuredContent;
  check(res.content?.length === 1 && JSON.stringify(JSON.parse(res.content[0].text)) === JSON.stringify(out), `${name}: content and structuredContent differ`, res);
  if (wantError) check(res.isError === true && out.error === wantError, `${name}: want ${wantError}`, out);
  else check(!res.isError, `${name} failed`, out);
  return out;
}

const summary = {};

// A: no bearer, the magic link as the endpoint, a peer identity.
const a = await connect(AMS_LINK, "Claude Code");
const tools = (await a.client.listTools()).tools.map((t) => t.name);
check(["ams_join", "ams_send", "ams_recv", "ams_set_metadata", "ams_leave"].every((n) => tools.includes(n)), "tools", tools);
check(a.client.getInstructions().includes("ams_send{data}"), "instructions teach the dialect", a.client.getInstructions());
const joinedA = await call(a, "ams_join", { peer_identity: { kind: "agent", model: "ts-model", client: "Claude Code" } });
for (const k of ["ok", "conversation_id", "stream_id", "stream_name", "metadata", "self_subscribe", "peers", "peer_identity"]) {
  check(k in joinedA, `join result lacks ${k}`, joinedA);
}
check(/^claude-code-[0-9a-f]{4}$/.test(joinedA.stream_name), "auto stream name", joinedA.stream_name);
summary.nameA = joinedA.stream_name;

// B: a second session on the same link, with its own stream.
const b = await connect(AMS_LINK, "Cursor");
const joinedB = await call(b, "ams_join", {});
check(joinedB.stream_name !== joinedA.stream_name && joinedB.stream_name.startsWith("cursor-"), "two sessions, two streams", [joinedA.stream_name, joinedB.stream_name]);

// join → send{data} → recv{wait_ms}, no handle anywhere.
const sent = await call(a, "ams_send", { data: "hello from ts <b>&amp;" });
check(sent.ok === true && typeof sent.ts === "string", "send result", sent);
const got = await call(b, "ams_recv", { wait_ms: 5000, gather_ms: 0 });
const tokens = got.frames.filter((f) => f.method === "notifications/ams/token");
check(got.ok === true && tokens.length === 1 && tokens[0].params.data === "hello from ts <b>&amp;" && tokens[0].params.stream_name === joinedA.stream_name, "recv", got);

// Push: A's SDK opened the GET leg after initialize; B's tokens reach A as
// notifications/ams/token, and A's ams_recv still returns them.
await sleep(2500); // the leg rereads the session's binding every 2 s
const pushStart = Date.now();
await call(b, "ams_send", { data: "pushed to a" });
for (let i = 0; i < 100 && !a.notes.some((n) => n.method === "notifications/ams/token" && n.params.data === "pushed to a"); i++) await sleep(50);
const pushed = a.notes.find((n) => n.method === "notifications/ams/token" && n.params.data === "pushed to a");
check(pushed, "no push reached the TypeScript client", a.notes);
summary.pushMillis = pushed.at - pushStart;
const readA = await call(a, "ams_recv", { wait_ms: 2000, gather_ms: 0 });
check(readA.frames.some((f) => f.method === "notifications/ams/token" && f.params.data === "pushed to a"), "a pushed frame was marked read", readA);

// A streamed reply of 18 words 40 ms apart, gathered by one read.
const words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen".split(" ");
const streaming = (async () => {
  for (const w of words) {
    await call(b, "ams_send", { data: w + " " });
    await sleep(40);
  }
})();
let calls = 0;
let text = "";
while (text.split(" ").length <= words.length && calls < 50) {
  calls++;
  const r = await call(a, "ams_recv", { wait_ms: 5000 });
  for (const f of r.frames) if (f.method === "notifications/ams/token") text += f.params.data;
}
await streaming;
check(text === words.join(" ") + " ", "streamed reply", text);
summary.callsPerStreamedReply = calls;

// Self-rehydration: a session on /mcp that never joined sends with magic_link.
const d = await connect(`${AMS_URL}/mcp`, "ChatGPT");
const rehydrated = await call(d, "ams_send", { magic_link: AMS_LINK, stream_name: "rehydrated", data: "no join" });
check(rehydrated.ok === true && rehydrated.rejoined === true, "self-rehydration", rehydrated);
await call(d, "ams_leave", {});
await call(d, "ams_send", { data: "after leave" }, "not_joined");

// Takeover: C names A's stream; A is told on its next call.
const c = await connect(AMS_LINK, "Claude Code");
await call(c, "ams_join", { stream_name: joinedA.stream_name });
const takenOver = await call(a, "ams_recv", {}, "not_joined");
check(takenOver.message.includes("took it over"), "takeover message", takenOver);
for (let i = 0; i < 100 && !a.notes.some((n) => n.method === "notifications/ams/closed"); i++) await sleep(50);
summary.closedPushed = a.notes.some((n) => n.method === "notifications/ams/closed" && n.params.reason === "stream_displaced");

// Prompts and resources.
const resources = (await a.client.listResources()).resources.map((r) => r.uri);
check(resources.includes("ams://protocol") && resources.some((u) => u.endsWith("/peers")), "resources", resources);
const peers = await a.client.readResource({ uri: resources.find((u) => u.endsWith("/peers")) });
check(peers.contents[0].text.includes(joinedB.stream_name), "peers resource", peers);
summary.prompts = (await a.client.listPrompts()).prompts.map((p) => p.name);

// Ending B's session (DELETE) makes its member leave; the Go side checks.
await b.transport.terminateSession();
summary.nameB = joinedB.stream_name;
for (const x of [a, b, c, d]) await x.client.close();
console.log(JSON.stringify(summary));
