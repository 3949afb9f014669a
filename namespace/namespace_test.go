package namespace

import (
	"net/http"
	"sync"
	"testing"
)

func TestClaimsFirstWins(t *testing.T) {
	store := &MemoryStore{}
	first := `{"account_id":"acc_1","namespace":"demo"}`
	if status, _ := Serve(store, "GET", AccountPath, "", nil); status != http.StatusNotFound {
		t.Fatalf("read before any claim: %d", status)
	}
	if status, _ := Serve(store, "POST", AccountPath, "", []byte(first)); status != http.StatusCreated {
		t.Fatalf("first claim: %d", status)
	}
	if status, _ := Serve(store, "POST", AccountPath, "", []byte(`{"account_id":"acc_2"}`)); status != http.StatusConflict {
		t.Fatalf("second claim: %d", status)
	}
	if status, body := Serve(store, "GET", AccountPath, "", nil); status != http.StatusOK || string(body) != first {
		t.Fatalf("read: %d %s", status, body)
	}
	// Only the holder releases.
	Serve(store, "DELETE", AccountPath, "account_id=acc_2", nil)
	if status, _ := Serve(store, "GET", AccountPath, "", nil); status != http.StatusOK {
		t.Fatal("another account released the claim")
	}
	Serve(store, "DELETE", AccountPath, "account_id=acc_1", nil)
	if status, _ := Serve(store, "POST", AccountPath, "", []byte(`{"account_id":"acc_2"}`)); status != http.StatusCreated {
		t.Fatalf("claim after release: %d", status)
	}
}

func TestAliasClaims(t *testing.T) {
	store := &MemoryStore{}
	rec := `{"conversation_id":"conv_1","alias":"room"}`
	if status, _ := Serve(store, "POST", AliasPath("room"), "", []byte(rec)); status != http.StatusCreated {
		t.Fatalf("claim: %d", status)
	}
	if status, _ := Serve(store, "POST", AliasPath("room"), "", []byte(`{"conversation_id":"conv_2"}`)); status != http.StatusConflict {
		t.Fatalf("second claim: %d", status)
	}
	if status, body := Serve(store, "GET", AliasPath("room"), "", nil); status != http.StatusOK || string(body) != rec {
		t.Fatalf("read: %d %s", status, body)
	}
	// An alias claim is not the namespace claim, and another alias is free.
	if status, _ := Serve(store, "GET", AccountPath, "", nil); status != http.StatusNotFound {
		t.Fatal("an alias claim claimed the namespace")
	}
	if status, _ := Serve(store, "POST", AliasPath("other"), "", []byte(`{"conversation_id":"conv_3"}`)); status != http.StatusCreated {
		t.Fatalf("other alias: %d", status)
	}
}

func TestRefusals(t *testing.T) {
	store := &MemoryStore{}
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", AliasPath("Bad_Alias"), `{"conversation_id":"c"}`, http.StatusNotFound},
		{"POST", "/elsewhere", `{}`, http.StatusNotFound},
		{"POST", AccountPath, `{"namespace":"no id"}`, http.StatusBadRequest},
		{"POST", AliasPath("room"), `not json`, http.StatusBadRequest},
		{"POST", AliasPath("room"), `{"account_id":"a"}`, http.StatusBadRequest},
		{"DELETE", AliasPath("room"), ``, http.StatusMethodNotAllowed},
		{"PUT", AccountPath, ``, http.StatusMethodNotAllowed},
	} {
		if status, _ := Serve(store, c.method, c.path, "", []byte(c.body)); status != c.status {
			t.Errorf("%s %s %s: %d, want %d", c.method, c.path, c.body, status, c.status)
		}
	}
	if _, found := store.Get(aliasKey("room")); found {
		t.Fatal("a refused claim stored something")
	}
}

func TestConcurrentClaims(t *testing.T) {
	store := &MemoryStore{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _ := Serve(store, "POST", AliasPath("room"), "", []byte(`{"conversation_id":"c"}`)); status == http.StatusCreated {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d of 20 concurrent claims won", won)
	}
}
