package wire

import "os"

// FaultInjectionVar enables deliberate failures for the end-to-end tests of
// crash recovery. No deployment sets it; without it the faults do not exist.
const FaultInjectionVar = "AMS_FAULT_INJECTION"

// Faults a test can trigger when fault injection is on.
const (
	FaultPanicPath  = "/x/fault/panic"
	FaultExitPath   = "/x/fault/exit"
	FaultPanicFrame = `{"type":"x_fault_panic"}`
	FaultExitFrame  = `{"type":"x_fault_exit"}`
	// FaultKVLagHeader on a mint or a rotation keeps its KV writes (and the
	// isolate's cache) from landing, as another location sees KV before it
	// catches up.
	FaultKVLagHeader = "X-AMS-Fault-KV-Lag"
)

// InjectFault panics or ends the program for the fault named by what (a path
// or a frame) and reports whether what named one.
func InjectFault(what string) bool {
	switch what {
	case FaultPanicPath, FaultPanicFrame:
		panic("injected fault: " + what)
	case FaultExitPath, FaultExitFrame:
		os.Exit(3)
	}
	return false
}
