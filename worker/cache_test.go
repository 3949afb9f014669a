package worker

import (
	"fmt"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	var none *Cache
	none.keepAccount("h", &Account{AccountID: "acc_x"}, now)
	if none.account("h", now) != nil {
		t.Fatal("a nil cache returned an account")
	}

	c := NewCache()
	acc := &Account{AccountID: "acc_x", CredentialHash: "h"}
	c.keepAccount("h", acc, now)
	if got := c.account("h", now.Add(AccountTTL)); got != acc {
		t.Fatalf("account within its TTL: %v", got)
	}
	if got := c.account("h", now.Add(AccountTTL+time.Millisecond)); got != nil {
		t.Fatal("an expired account was returned")
	}

	rec := &ConversationRecord{Namespace: "ns", Alias: "a", ConversationID: "conv_1"}
	c.keepConversation(rec, now)
	if got := c.conversation("ns", "a", now.Add(time.Second)); got != rec {
		t.Fatal("conversation miss within its TTL")
	}
	if c.conversation("ns", "b", now) != nil || c.conversation("ns", "a", now.Add(ConversationTTL+time.Millisecond)) != nil {
		t.Fatal("conversation hit for another alias or after its TTL")
	}
	newer := &ConversationRecord{Namespace: "ns", Alias: "a", ConversationID: "conv_1", LinkGeneration: 1}
	c.keepConversation(newer, now)
	if c.conversation("ns", "a", now) != newer {
		t.Fatal("a rotation's record did not replace the cached one")
	}

	// The bound: a full map starts over rather than growing.
	for i := 0; i < cacheEntries+10; i++ {
		c.keepAccount(fmt.Sprint(i), acc, now)
	}
	if n := len(c.accounts.items); n > cacheEntries {
		t.Fatalf("%d entries past the bound of %d", n, cacheEntries)
	}
}
