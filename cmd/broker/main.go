//go:build js && wasm

// Command broker is the AMS program compiled to WebAssembly: one binary that
// serves both the control-plane Worker and the conversation Durable Object.
// build/entry.mjs starts it once per isolate, on the first event.
package main

import (
	"github.com/ams-dev/ams/bridge"
	"github.com/ams-dev/ams/durable"
	"github.com/ams-dev/ams/namespace"
	"github.com/ams-dev/ams/worker"
)

func main() {
	worker.Register()
	durable.Register()
	namespace.Register()
	durable.RegisterSession()
	bridge.Ready()
	select {} // serve callbacks for the life of the isolate
}
