// The benchmark floor (bench/floor): a plain-JS Worker and Durable Object
// that do the minimum AMS does, with no auth, no JSON and no attachments.
//   GET /healthz            -> {"ok":true,"ts":...}   (control-plane floor)
//   GET /room/{name} (WS)   -> hibernatable socket in Durable Object {name};
//                              sends {"type":"hello"} on accept (join floor),
//                              forwards every message verbatim to every other
//                              socket of the room (fan-out floor).
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
    this.ctx.acceptWebSocket(pair[1]);
    pair[1].send(HELLO);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }
  webSocketMessage(ws, message) {
    for (const other of this.ctx.getWebSockets()) {
      if (other !== ws) {
        try { other.send(message); } catch (e) { /* closing under us */ }
      }
    }
  }
  webSocketClose(ws, code, reason) {
    try { ws.close(code, reason); } catch (e) { /* already closed */ }
  }
  webSocketError(ws, error) {}
}

const ROOM = /^\/room\/([A-Za-z0-9._-]{1,64})$/;

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") {
      return Response.json({ ok: true, host: url.host, ts: new Date().toISOString() });
    }
    const m = ROOM.exec(url.pathname);
    if (m) return env.ROOMS.get(env.ROOMS.idFromName(m[1])).fetch(request);
    return Response.json({ error: "not_found" }, { status: 404 });
  },
};
