// The JS the platform requires: the Worker's default export and the Durable
// Object class. Each forwards to the Go program (cmd/broker), started once
// per isolate on the first event, and started again if it exits or traps.
import "./wasm_exec.js";
import wasm from "./app.wasm";
import { DurableObject } from "cloudflare:workers";

let go;
let ready;

function broker(env) {
  if (!go || go.exited) {
    go = new Go();
    ready = new Promise((resolve) => {
      // syumai/workers reads env from globalThis.context; Go adds its handlers to binding.
      globalThis.context = { env, binding: {}, ready: () => resolve(globalThis.context.binding) };
    });
    go.run(new WebAssembly.Instance(wasm, go.importObject));
  }
  return ready;
}

// call runs one handler; Go recovers its own panics, so a throw here is a
// trap that left the program unusable: the next event starts a fresh one.
async function call(env, name, ...args) {
  const handlers = await broker(env);
  try {
    return await handlers[name](...args);
  } catch (err) {
    go = undefined;
    throw err;
  }
}

// A new incarnation per construction, so Go rebuilds a woken object's state.
let incarnations = 0;

export class Conversation extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.incarnation = ++incarnations;
  }
  fetch(request) {
    return call(this.env, "conversationFetch", this, request);
  }
  webSocketMessage(ws, message) {
    return call(this.env, "conversationMessage", this, ws, message);
  }
  webSocketClose(ws, code, reason, wasClean) {
    return call(this.env, "conversationClose", this, ws, code, reason, wasClean);
  }
  webSocketError(ws, error) {
    return call(this.env, "conversationError", this, ws, error);
  }
  alarm() {
    return call(this.env, "conversationAlarm", this);
  }
}

export default {
  fetch(request, env, ctx) {
    return call(env, "fetch", request, env, ctx);
  },
};
