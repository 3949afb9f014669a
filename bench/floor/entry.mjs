// The benchmark floor (bench/floor): a plain-JS Worker and Durable Object
// that do the minimum AMS does, with no auth, no JSON and no attachments.
//   GET /healthz            -> {"ok":true,"ts":...}   (control-plane floor)
//   GET /room/{name} (WS)   -> hibernatable socket in Durable Object {name};
//                              sends {"type":"hello"} on accept (join floor),
//                              forwards every message verbatim to every other
//                              socket of the room (fan-out floor).
//   GET /ref/{name} (WS)    -> the same room, but each message is handled the
//                              way the hosted reference (TypeScript) does:
//                              JSON.parse, check, build the token frame AMS
//                              sends (stream fields, seq, ts) and send it to
//                              every other socket. A stand-in for the
//                              reference's per-token cost, without storage.
//   POST /mint              -> the KV operations of an AMS mint with a warm
//                              account cache: an alias existence read, then
//                              two writes at once, plus the two hashes.
import { DurableObject } from "cloudflare:workers";

const HELLO = '{"type":"hello"}';

export class Room extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    // amsbench counts these lines to prove a room woke from hibernation.
    if (ctx.getWebSockets().length > 0) console.log("floor: room woke with " + ctx.getWebSockets().length + " sockets");
  }
  async fetch(request) {
    if (request.headers.get("Upgrade") !== "websocket") {
      return new Response('{"error":"upgrade_required"}', { status: 426 });
    }
    const pair = new WebSocketPair();
    const ref = new URL(request.url).pathname.startsWith("/ref/");
    this.ctx.acceptWebSocket(pair[1], ref ? ["ref"] : []);
    if (ref) {
      const n = ++this.streams || (this.streams = 1);
      pair[1].serializeAttachment({ stream_id: "str_" + n.toString().padStart(26, "0"), stream_name: "s" + n, owner_account_id: "acc_" + n.toString().padStart(26, "0") });
    }
    pair[1].send(HELLO);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  webSocketMessage(ws, message) {
    if (this.ref === undefined) this.ref = this.ctx.getTags(ws)[0] === "ref";
    if (this.ref) return this.stamp(ws, message);
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) {
        try { other.send(message); } catch (e) { /* closing under us */ }
      }
    }
  }
  stamp(ws, message) {
    let conn = this.conns?.get(ws);
    if (!conn) {
      this.conns ??= new Map();
      conn = ws.deserializeAttachment();
      this.conns.set(ws, conn);
    }
    let data;
    try {
      data = JSON.parse(message);
    } catch {
      return ws.close(4400, "malformed_frame");
    }
    if (data === null || typeof data !== "object" || data.type !== "token" || typeof data.data !== "string") {
      return ws.close(4400, "malformed_frame");
    }
    this.seq = (this.seq ?? 0) + 1;
    const frame = JSON.stringify({ type: "token", seq: this.seq, stream_id: conn.stream_id, stream_name: conn.stream_name, owner_account_id: conn.owner_account_id, ts: new Date().toISOString(), data: data.data });
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) {
        try { other.send(frame); } catch (e) { /* closing under us */ }
      }
    }
  }
  webSocketClose(ws, code, reason) {
    try { ws.close(code, reason); } catch (e) { /* already closed */ }
  }
  webSocketError(ws, error) {}
}

const ROOM = /^\/(?:room|ref)\/([A-Za-z0-9._-]{1,64})$/;
const encoder = new TextEncoder();

async function sha256(text) {
  return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)))));
}

function random(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function mint(request, env) {
  const body = await request.json().catch(() => ({}));
  await sha256("pepper" + (request.headers.get("Authorization") ?? "")); // the credential hash
  const alias = random(6);
  if ((await env.KV.get("alias:bench:" + alias)) !== null) return Response.json({ error: "alias_taken" }, { status: 409 });
  const token = random(16);
  const id = "conv_" + crypto.randomUUID();
  const rec = { conversation_id: id, alias, namespace: "bench", id_kind: "uuid", permissive_token_hash: await sha256("pepper" + token), metadata: body.metadata ?? {}, created_at: new Date().toISOString() };
  await Promise.all([env.KV.put("conversation:" + id, JSON.stringify(rec)), env.KV.put("alias:bench:" + alias, id)]);
  return Response.json({ conversation_id: id, alias, magic_link: "http://x/bench/conversations/" + alias + "?t=" + token }, { status: 201 });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") {
      return Response.json({ ok: true, host: url.host, ts: new Date().toISOString() });
    }
    if (url.pathname === "/mint" && request.method === "POST") return mint(request, env);
    const m = ROOM.exec(url.pathname);
    if (m) return env.ROOMS.get(env.ROOMS.idFromName(m[1])).fetch(request);
    return Response.json({ error: "not_found" }, { status: 404 });
  },
};
