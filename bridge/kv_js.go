package bridge

import (
	"context"
	"syscall/js"

	"github.com/syumai/workers/cloudflare"
	"github.com/syumai/workers/cloudflare/kv"
)

// KV is a Workers KV namespace binding. Writes go through syumai/workers; Get
// is our own because a missing key must be told apart from a stored value.
type KV struct {
	namespace *kv.Namespace
	binding   js.Value
}

// NewKV opens the KV namespace bound as name.
func NewKV(name string) (*KV, error) {
	ns, err := kv.NewNamespace(name)
	if err != nil {
		return nil, err
	}
	return &KV{namespace: ns, binding: cloudflare.GetBinding(name)}, nil
}

// Get returns key's value and whether it exists.
func (k *KV) Get(_ context.Context, key string) (string, bool, error) {
	v, err := Await(k.binding.Call("get", key, "text"))
	if err != nil || v.IsNull() || v.IsUndefined() {
		return "", false, err
	}
	return v.String(), true, nil
}

// Put stores value under key.
func (k *KV) Put(_ context.Context, key, value string) error {
	return k.namespace.PutString(key, value, nil)
}

// Delete removes key.
func (k *KV) Delete(_ context.Context, key string) error {
	return k.namespace.Delete(key)
}
