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
	// FaultKVLagHeader on an account creation, a mint or a rotation keeps its
	// KV writes (and the isolate's cache) from landing, as another location sees KV before it
	// catches up.
	FaultKVLagHeader = "X-AMS-Fault-KV-Lag"
	// FaultPanicTwiceFrame panics, and the panic's fallback panics too.
	FaultPanicTwiceFrame = `{"type":"x_fault_panic_twice"}`
	// FaultPanicStreamName, as a joiner's stream name, panics in the
	// conversation object's connect.
	FaultPanicStreamName = "x-fault-panic"
	// FaultPanicTwiceStreamName panics in connect, and so does the panic's
	// fallback.
	FaultPanicTwiceStreamName = "x-fault-panic-twice"
)

// fallbackFault is armed by FaultPanicTwiceFrame for the next fallback.
var fallbackFault bool

// InjectFault panics or ends the program for the fault named by what (a path,
// a frame or a stream name) and reports whether what named one.
func InjectFault(what string) bool {
	switch what {
	case FaultPanicTwiceFrame, FaultPanicTwiceStreamName:
		fallbackFault = true
		panic("injected fault: " + what)
	case FaultPanicPath, FaultPanicFrame, FaultPanicStreamName:
		panic("injected fault: " + what)
	case FaultExitPath, FaultExitFrame:
		os.Exit(3)
	}
	return false
}

// InjectFallbackFault panics if FaultPanicTwiceFrame armed it; every panic
// fallback calls it first. Only InjectFault arms it, so without fault
// injection it does nothing.
func InjectFallbackFault() {
	if fallbackFault {
		fallbackFault = false
		panic("injected fault in a panic fallback")
	}
}
