// The demo page: § A talks to the broker through its MCP wrapper, exactly as
// an agent would; § B watches the same conversation on a raw WebSocket.
"use strict";

const $ = (id) => document.getElementById(id);
const MCP_VERSION = "2026-07-28";
let rpcID = 0;
const state = { credential: "", link: "", handle: "", joined: false };

// ---- live wire status -------------------------------------------------------
async function pollHealth() {
  const started = performance.now();
  try {
    const res = await fetch("/healthz", { cache: "no-store" });
    const body = await res.json();
    const ms = Math.round(performance.now() - started);
    $("wire-host").textContent = body.host;
    $("wire-latency").textContent = body.ok ? `${ms} ms · ok` : "not ok";
    $("wire-dot").className = body.ok ? "dot ok" : "dot bad";
  } catch (err) {
    $("wire-latency").textContent = "unreachable";
    $("wire-dot").className = "dot bad";
  }
}
pollHealth();
setInterval(pollHealth, 8000);

// ---- MCP over Streamable HTTP (JSON responses) -----------------------------
async function rpc(endpoint, method, params) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/json, text/event-stream",
    "MCP-Protocol-Version": MCP_VERSION,
  };
  if (state.credential) headers.Authorization = `Bearer ${state.credential}`;
  const body = {
    jsonrpc: "2.0", id: ++rpcID, method,
    params: { ...params, _meta: { "io.modelcontextprotocol/protocolVersion": MCP_VERSION } },
  };
  const res = await fetch(endpoint, { method: "POST", headers, body: JSON.stringify(body) });
  const reply = await readReply(res);
  if (reply.error) throw new Error(reply.error.message || String(reply.error.code));
  return reply.result;
}

// readReply reads a JSON-RPC response sent as JSON or as an event stream,
// where notifications/ams/* precede the response (the frames are in the
// result too, so the page reads them there).
async function readReply(res) {
  if (!(res.headers.get("Content-Type") || "").startsWith("text/event-stream")) return res.json();
  const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("event: message\ndata: "));
  const messages = events.map((e) => JSON.parse(e.slice("event: message\ndata: ".length)));
  return messages.find((m) => "id" in m);
}

async function tool(endpoint, name, args) {
  const result = await rpc(endpoint, "tools/call", { name, arguments: args });
  if (result.isError) throw new Error(result.structuredContent.error + ": " + result.structuredContent.message);
  return result.structuredContent;
}

// ---- § A --------------------------------------------------------------------
function say(text) { $("demo-status").textContent = text; }

function addChat(who, text, kind) {
  const li = document.createElement("li");
  if (kind) li.className = kind;
  if (who) {
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who + ":";
    li.append(name);
  }
  li.append(document.createTextNode(text));
  $("chat").append(li);
  $("chat").scrollTop = $("chat").scrollHeight;
}

function randomSuffix(n) {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

async function mint() {
  $("mint").disabled = true;
  try {
    say("creating a demo account…");
    const res = await fetch("/v1/accounts", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ namespace: `demo-${randomSuffix(8)}` }),
    });
    const account = await res.json();
    if (!res.ok) throw new Error(account.error + ": " + account.message);
    state.credential = account.credential;

    say("minting through ams_create_conversation…");
    const created = await tool("/mcp", "ams_create_conversation", {
      stream_name: "browser",
      metadata: { instructions: "A demo conversation from the AMS page. Say hello to the human." },
    });
    state.link = created.magic_link;
    $("magic-link").value = state.link;
    $("copy-link").disabled = false;

    say("joining through ams_join…");
    const joined = await tool(state.link, "ams_join", { stream_name: "browser" });
    state.handle = joined.handle;
    state.joined = true;
    for (const peer of joined.peers) addChat("", `${peer.stream_name} is here`, "event");
    $("token-input").disabled = false;
    $("send").disabled = false;
    say(`joined ${created.alias} as “browser” — share the link`);
    openWire();
    receiveLoop();
  } catch (err) {
    say("failed: " + err.message);
    $("mint").disabled = false;
  }
}

async function receiveLoop() {
  while (state.joined) {
    try {
      const got = await tool(state.link, "ams_recv", { handle: state.handle, wait_ms: 20000 });
      if (got.truncated) addChat("", "some frames were lost before they could be read", "event");
      for (const { method, params: frame } of got.frames) {
        if (method === "notifications/ams/token") addChat(frame.stream_name, frame.data);
        else if (method === "notifications/ams/stream_joined") addChat("", `${frame.stream_name} joined`, "event");
        else if (method === "notifications/ams/stream_left") addChat("", `${frame.stream_name} left`, "event");
        else if (method === "notifications/ams/stream_metadata") addChat("", `${frame.stream_name} changed its metadata`, "event");
      }
    } catch (err) {
      say("receive failed: " + err.message + " — retrying");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function send(event) {
  event.preventDefault();
  const input = $("token-input");
  const data = input.value;
  if (!data || !state.joined) return;
  input.value = "";
  try {
    await tool(state.link, "ams_send", { handle: state.handle, data });
    addChat("browser (you)", data, "me");
  } catch (err) {
    say("send failed: " + err.message);
  }
}

async function copyFrom(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Select and copy";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
}

// ---- § B: the raw wire --------------------------------------------------------
function openWire() {
  const url = new URL(state.link);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname += "/connect";
  url.searchParams.set("stream_name", "wire-view");
  // Browsers cannot set headers on a WebSocket: the bearer rides as a subprotocol.
  const ws = new WebSocket(url, ["ams.v1", "ams.bearer." + state.credential]);
  $("raw-status").textContent = "connecting…";
  ws.onopen = () => { $("raw-status").textContent = `connected to ${url.pathname} as wire-view`; };
  ws.onmessage = (event) => addFrame(event.data);
  ws.onclose = (event) => {
    $("raw-status").textContent = `closed ${event.code} ${event.reason}`;
  };
}

function addFrame(text) {
  let frame;
  try { frame = JSON.parse(text); } catch { frame = { type: "?" }; }
  const li = document.createElement("li");
  const type = document.createElement("span");
  type.className = "type";
  type.textContent = frame.type;
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify(frame, null, 2);
  li.append(type, pre);
  $("frames").append(li);
  $("frames").scrollTop = $("frames").scrollHeight;
}

// ---- wiring -------------------------------------------------------------------
$("mint").addEventListener("click", mint);
$("send-form").addEventListener("submit", send);
$("copy-link").addEventListener("click", (e) => copyFrom(state.link, e.currentTarget));
for (const button of document.querySelectorAll("[data-copy-previous]")) {
  button.addEventListener("click", () => copyFrom(button.previousElementSibling.textContent, button));
}
