package worker

import (
	"errors"
	"strings"
	"testing"
)

// TestParallelRecoversPanics: a step that panics on its goroutine fails the
// call with an error instead of ending the program; the other steps still
// run to the end.
func TestParallelRecoversPanics(t *testing.T) {
	ran := make(chan bool, 1)
	err := parallel(
		func() error { panic("boom") },
		func() error { ran <- true; return nil },
	)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("parallel = %v, want the panic as an error", err)
	}
	if !<-ran {
		t.Fatal("the other step did not run")
	}
	want := errors.New("plain")
	if err := parallel(func() error { return nil }, func() error { return want }); err != want {
		t.Fatalf("parallel = %v, want %v", err, want)
	}
}
