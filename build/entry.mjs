// The JS the platform requires: the Worker's default export and the Durable
// Object class. Each forwards to the Go program (cmd/broker), started once
// per isolate on the first event and started again if it ever exits.
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

// A new incarnation per construction, so Go rebuilds a woken object's state.
let incarnations = 0;

export class Conversation extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.incarnation = ++incarnations;
  }
  async fetch(request) {
    return (await broker(this.env)).conversationFetch(this, request);
  }
  async webSocketMessage(ws, message) {
    (await broker(this.env)).conversationMessage(this, ws, message);
  }
  async webSocketClose(ws, code, reason, wasClean) {
    (await broker(this.env)).conversationClose(this, ws, code, reason, wasClean);
  }
  async webSocketError(ws, error) {
    (await broker(this.env)).conversationError(this, ws, error);
  }
}

export default {
  async fetch(request, env, ctx) {
    return (await broker(env)).fetch(request, env, ctx);
  },
};
