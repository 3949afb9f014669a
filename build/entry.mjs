// The JS the platform requires: the Worker's default export and the Durable
// Object class. Each forwards to the Go program (cmd/broker), started once
// per isolate on the first event, and started again if it exits or traps.
import "./wasm_exec.js";
import wasm from "./app.wasm";
import { DurableObject } from "cloudflare:workers";

let go;
let ready;
let handlers;

function broker(env) {
  if (!go || go.exited) {
    go = new Go();
    handlers = undefined;
    ready = new Promise((resolve) => {
      // syumai/workers reads env from globalThis.context; Go adds its handlers to binding.
      globalThis.context = { env, binding: {}, sendAll, ready: () => resolve((handlers = globalThis.context.binding)) };
    });
    go.run(new WebAssembly.Instance(wasm, go.importObject));
  }
  return ready;
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

// A new incarnation per construction, so Go rebuilds a woken object's state.
// Go finds its object by this number and gets each socket's hibernation tag
// (its connection id) from here: both would otherwise cost calls back into JS.
let incarnations = 0;

export class Conversation extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.incarnation = ++incarnations;
  }
  fetch(request) {
    return call(this.env, "conversationFetch", this, this.incarnation, request);
  }
  webSocketMessage(ws, message) {
    return call(this.env, "conversationMessage", this, this.incarnation, this.ctx.getTags(ws)[0], message);
  }
  webSocketClose(ws, code, reason) {
    return call(this.env, "conversationClose", this, this.incarnation, this.ctx.getTags(ws)[0], ws, code, reason);
  }
  webSocketError(ws) {
    return call(this.env, "conversationError", this, this.incarnation, this.ctx.getTags(ws)[0]);
  }
  alarm() {
    return call(this.env, "conversationAlarm", this, this.incarnation);
  }
}

// One object per namespace owns its claims (namespace/namespace.go).
export class Namespace extends DurableObject {
  fetch(request) {
    return call(this.env, "namespaceFetch", this, request);
  }
}

// One MCP session's binding to its member (durable/session.go). entry.mjs
// reads the small JSON body so Go can answer synchronously.
export class McpSession extends DurableObject {
  async fetch(request) {
    const body = await request.text();
    return call(this.env, "sessionFetch", this, request, body);
  }
}

export default {
  fetch(request, env, ctx) {
    return call(env, "fetch", request, env, ctx);
  },
};
