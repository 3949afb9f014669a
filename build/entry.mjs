// The JS the platform requires: the Worker's default export and the Durable
// Object class. Each forwards to the Go program (cmd/broker), started once
// per isolate on the first event, and started again if it exits or traps.
import "./wasm_exec.js";
import wasm from "./app.wasm";
import { DurableObject } from "cloudflare:workers";

let go;
let ready;
let handlers;
let hot; // the instance's exports and views of its hot-path arrays

function broker(env) {
  if (!go || go.exited) {
    go = new Go();
    // The Go heap is small and short-lived garbage dominates: collect less
    // often, but harder as it nears a bound well inside the isolate's memory.
    go.env = { GOGC: "400", GOMEMLIMIT: "48MiB" };
    handlers = hot = undefined;
    ready = new Promise((resolve) => {
      // syumai/workers reads env from globalThis.context; Go adds its handlers to binding.
      globalThis.context = { env, binding: {}, sendAll, refuse, ready: () => resolve((handlers = globalThis.context.binding)) };
    });
    const instance = new WebAssembly.Instance(wasm, go.importObject);
    go.run(instance); // returns once main waits for events: the exports are callable
    hot = { x: instance.exports };
    views();
  }
  return ready;
}

// The hot path (durable/hotpath_js.go): a socket message enters Go through
// an export taking integers, the text in Go's input array; Go leaves its
// sends and closes as ops in its output array. A memory.grow detaches the
// views, so they are checked after every call.
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const SLOW = -1;
const SEND = 1;

function views() {
  const { x } = hot;
  hot.in = new Uint8Array(x.mem.buffer, x.amsBuffer(0), x.amsBuffer(1));
  hot.out = new Uint8Array(x.mem.buffer, x.amsBuffer(2), x.amsBuffer(3));
  hot.dv = new DataView(x.mem.buffer, x.amsBuffer(2), x.amsBuffer(3));
}

// message runs Go's amsMessage on text; it returns the ops' length, or SLOW
// for the js.FuncOf path. If the program ended in the call (go.exited, or a
// trap), the event is dropped and the next one starts a new program, which
// rebuilds each conversation from its sockets.
function message(incarnation, slot, text) {
  if (hot.in.byteLength === 0) views();
  const { read, written } = encoder.encodeInto(text, hot.in);
  if (read !== text.length) return SLOW;
  try {
    return settle(hot.x.amsMessage(incarnation, slot, written, Date.now()));
  } catch (err) {
    return trapped(err);
  }
}

// closed runs Go's amsClose for the socket of slot, closed with code and
// reason (in Go's input array); it returns as message does.
function closed(incarnation, slot, code, reason) {
  if (hot.in.byteLength === 0) views();
  const { read, written } = encoder.encodeInto(reason, hot.in);
  if (read !== reason.length) return SLOW;
  try {
    return settle(hot.x.amsClose(incarnation, slot, code, written, Date.now()));
  } catch (err) {
    return trapped(err);
  }
}

// settle passes on what a hot-path export returned, unless the program
// ended in the call; trapped handles a call that threw.
function settle(n) {
  if (go.exited) {
    go = handlers = hot = undefined;
    return 0;
  }
  if (hot.out.byteLength === 0) views();
  return n;
}

function trapped(err) {
  go = handlers = hot = undefined;
  throw err;
}

// perform carries out n bytes of ops on the sockets of one object: the
// fan-out is this one loop. A socket that closed under us throws; its own
// close event removes it.
function perform(sockets, n) {
  if (hot.out.byteLength === 0) views(); // drain runs inside a call
  const { out, dv } = hot;
  for (let at = 0; at < n; ) {
    const op = out[at];
    const a = dv.getUint32(at + 1, true);
    if (op === SEND) {
      const text = decoder.decode(out.subarray(at + 5, at + 5 + a));
      at += 5 + a;
      const end = at + 4 + 4 * dv.getUint32(at, true);
      for (at += 4; at < end; at += 4) {
        try {
          sockets.get(dv.getUint32(at, true)).send(text);
        } catch {}
      }
    } else {
      const code = dv.getUint32(at + 5, true);
      const len = dv.getUint32(at + 9, true);
      const reason = decoder.decode(out.subarray(at + 13, at + 13 + len));
      at += 13 + len;
      const ws = sockets.get(a);
      sockets.delete(a);
      try {
        ws.close(code, reason);
      } catch {}
    }
  }
}

// call runs one handler, synchronously once Go is up (an await per event is
// measurable at thousands of messages a second). Go recovers its own panics,
// so a throw here is a trap that left the program unusable: the next event
// starts a fresh one.
function call(env, name, ...args) {
  if (!handlers || go.exited) {
    return broker(env).then(() => call(env, name, ...args));
  }
  try {
    return handlers[name](...args);
  } catch (err) {
    go = handlers = undefined;
    throw err;
  }
}

// callAsync runs a handler Go exports with bridge.ExportAsync: Go resolves
// the promise made here when its goroutine is done.
function callAsync(env, name, ...args) {
  return new Promise((resolve, reject) => {
    const started = call(env, name, resolve, ...args);
    if (started instanceof Promise) started.catch(reject); // Go was starting
  });
}

// sendAll is the fan-out: Go passes a frame and its recipients in one call
// instead of crossing into JS once per socket. A socket that closed under us
// throws; its own close event removes it.
function sendAll(text, ...sockets) {
  for (const ws of sockets) {
    try {
      ws.send(text);
    } catch {}
  }
}

// refuse delivers a refusal on the server end of a WebSocketPair whose
// client end Go is returning: accepted and closed only after the runtime
// coupled the client end to the caller (bridge.RefuseUpgrade says why).
function refuse(server, code, reason) {
  setTimeout(() => {
    try {
      server.accept();
      server.close(code, reason);
    } catch {}
  }, 0);
}

// A new incarnation per construction, so Go rebuilds a woken object's state.
// Go finds its object by this number and gets each socket's hibernation tag
// (its connection id) from here: both would otherwise cost calls back into JS.
let incarnations = 0;

export class Conversation extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.incarnation = ++incarnations;
    this.sockets = new Map(); // slot -> socket, for the hot path's ops
    this.slots = 0; // never reused in this incarnation, even across Go restarts
  }
  // adopt numbers a socket for the hot path. Go calls it for every socket it
  // serves, again when it rebuilds the object (after a wake, a panic or a
  // restart of Go), which keeps the number.
  adopt(ws) {
    if (ws.amsSlot !== undefined && this.sockets.get(ws.amsSlot) === ws) return ws.amsSlot;
    this.sockets.set(++this.slots, ws);
    ws.amsSlot = this.slots;
    return this.slots;
  }
  // drain performs the ops of an output array that filled up mid-event.
  drain(n) {
    perform(this.sockets, n);
  }
  // kick starts the timer that writes buffered events to storage
  // (AMS_REPLAY_FLUSH_MILLIS after the first; flushMillis is set by Go).
  kick() {
    if (!this.flushSoon && this.flushMillis !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushSoon = true;
      this.flushTimer = setTimeout(() => this.flush(), this.flushMillis);
    }
  }
  flush() {
    this.flushSoon = false;
    if (!handlers || go.exited) return; // the program ended: what it held is gone (docs/DELIVERY.md)
    let again;
    try {
      again = call(this.env, "conversationFlush", this, this.incarnation);
    } catch (err) {
      console.error("ams: flush:", err);
      return;
    }
    if (again > 0 && !this.flushSoon) this.flushTimer = setTimeout(() => this.flush(), again);
  }
  fetch(request) {
    return call(this.env, "conversationFetch", this, this.incarnation, request);
  }
  webSocketMessage(ws, text) {
    if (text.length > this.maxFrame) text = text.length; // refused unread (wire.Limits.FrameChars)
    if (hot && ws.amsSlot !== undefined && typeof text === "string") {
      const n = message(this.incarnation, ws.amsSlot, text);
      if (n !== SLOW) {
        if (n > 0) perform(this.sockets, n);
        this.kick();
        return;
      }
    }
    return call(this.env, "conversationMessage", this, this.incarnation, this.ctx.getTags(ws)[0], text);
  }
  webSocketClose(ws, code, reason) {
    if (hot && ws.amsSlot !== undefined && this.sockets.get(ws.amsSlot) === ws && typeof reason === "string") {
      const n = closed(this.incarnation, ws.amsSlot, code, reason);
      if (n !== SLOW) {
        if (n > 0) perform(this.sockets, n); // stream_left, then the reciprocal close
        this.sockets.delete(ws.amsSlot);
        this.kick();
        return;
      }
    }
    this.sockets.delete(ws.amsSlot);
    return call(this.env, "conversationClose", this, this.incarnation, this.ctx.getTags(ws)[0], ws, code, reason);
  }
  webSocketError(ws) {
    this.sockets.delete(ws.amsSlot);
    return call(this.env, "conversationError", this, this.incarnation, this.ctx.getTags(ws)[0]);
  }
  alarm() {
    return call(this.env, "conversationAlarm", this, this.incarnation);
  }
}

// One object per namespace owns its claims, and one per credential its
// account (namespace/namespace.go).
export class Namespace extends DurableObject {
  fetch(request) {
    return callAsync(this.env, "namespaceFetch", this, request);
  }
}

// One MCP session's binding to its member (durable/session.go). entry.mjs
// reads the small JSON body so Go can answer synchronously.
export class McpSession extends DurableObject {
  async fetch(request) {
    const body = await request.text();
    return call(this.env, "sessionFetch", this, request, body);
  }
  alarm() {
    return call(this.env, "sessionAlarm", this);
  }
  // A push leg's watch socket (durable/session_js.go) only listens: the
  // object sends on it when the session is bound or ended.
  webSocketMessage() {}
  webSocketClose(ws, code, reason) {
    try {
      ws.close(code, reason);
    } catch {
      // already closed
    }
  }
  webSocketError() {}
}

export default {
  fetch(request, env, ctx) {
    return callAsync(env, "fetch", request, env, ctx);
  },
};
