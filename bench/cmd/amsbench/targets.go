//go:build !js

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/ams-dev/ams/client"
	"github.com/ams-dev/ams/internal/wranglerdev"
	"github.com/ams-dev/ams/wire"
)

// target is a system under test: the AMS broker or the JS floor. Every case
// runs the same code against both; only these methods differ.
type target interface {
	Name() string
	Server() *wranglerdev.Server
	// NewRoom makes a fresh conversation (AMS: a mint; floor: a new room name).
	NewRoom(ctx context.Context) (room, error)
	// Join opens one stream of room and returns once it is usable (AMS: the
	// joined frame; floor: the hello frame). slot picks the account (AMS).
	Join(ctx context.Context, r room, slot int) (peer, error)
	// Control is one control-plane call (AMS: POST /v1/{ns}/conversations;
	// floor: GET /healthz).
	Control(ctx context.Context) error
	// Health is GET /healthz.
	Health(ctx context.Context) error
	// Prepare makes sure slots 0..n-1 can join one room (AMS: accounts).
	Prepare(ctx context.Context, n int) error
}

type room struct {
	link string // AMS magic link
	name string // floor room
}

// peer is one stream's socket.
type peer interface {
	// Read returns the next frame: whether it is a token, its data, and
	// whether it is a token of this very stream (a self-echo).
	Read(ctx context.Context) (token bool, data string, self bool, err error)
	Send(ctx context.Context, data string) error
	Close()
}

// tokenFrame is what a publisher sends, to AMS and to the floor alike.
func tokenFrame(data string) []byte {
	raw, _ := json.Marshal(struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}{wire.TypeToken, data})
	return raw
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
	}
}

func get(ctx context.Context, h *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := h.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return nil
}

// ---- AMS ----

// StreamsPerAccount is the broker's per-account, per-conversation stream limit.
var streamsPerAccount = wire.DefaultLimits.StreamsPerAccount

type amsTarget struct {
	srv  *wranglerdev.Server
	http *http.Client

	mu       sync.Mutex
	accounts []*client.Account // accounts[0] owns every conversation
}

func (a *amsTarget) Name() string                { return "ams" }
func (a *amsTarget) Server() *wranglerdev.Server { return a.srv }

func (a *amsTarget) client(credential string) *client.Client {
	return &client.Client{BaseURL: a.srv.URL, Credential: credential, HTTP: a.http}
}

// Prepare creates one account per streamsPerAccount slots (plus the owner).
func (a *amsTarget) Prepare(ctx context.Context, slots int) error {
	need := (slots+streamsPerAccount-1)/streamsPerAccount + 1
	a.mu.Lock()
	have := len(a.accounts)
	a.mu.Unlock()
	if have >= need {
		return nil
	}
	made := make([]*client.Account, need-have)
	errs := make(chan error, len(made))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range made {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			acc, err := a.client("").CreateAccount(ctx, "bench-"+wranglerdev.RandomHex(6))
			if err != nil {
				errs <- fmt.Errorf("create account: %w", err)
				return
			}
			made[i] = acc
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	a.mu.Lock()
	a.accounts = append(a.accounts, made...)
	a.mu.Unlock()
	return nil
}

func (a *amsTarget) owner() *client.Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.accounts[0]
}

func (a *amsTarget) account(slot int) *client.Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.accounts[1+slot/streamsPerAccount]
}

func (a *amsTarget) NewRoom(ctx context.Context) (room, error) {
	owner := a.owner()
	conv, err := a.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	if err != nil {
		return room{}, err
	}
	return room{link: conv.MagicLink}, nil
}

func (a *amsTarget) Control(ctx context.Context) error {
	owner := a.owner()
	_, err := a.client(owner.Credential).CreateConversation(ctx, owner.Namespace, client.NewConversation{})
	return err
}

func (a *amsTarget) Health(ctx context.Context) error {
	return get(ctx, a.http, a.srv.URL+"/healthz")
}

func (a *amsTarget) Join(ctx context.Context, r room, slot int) (peer, error) {
	acc := a.account(slot)
	conn, joined, err := client.Join(ctx, r.link, client.DialOptions{
		Credential: acc.Credential,
		StreamName: fmt.Sprintf("s%d", slot),
	})
	if err != nil {
		return nil, err
	}
	return &amsPeer{conn: conn, streamID: joined.StreamID}, nil
}

type amsPeer struct {
	conn     *client.Conn
	streamID string
}

func (p *amsPeer) Read(ctx context.Context) (bool, string, bool, error) {
	f, err := p.conn.Read(ctx)
	if err != nil {
		return false, "", false, err
	}
	if f.Type != wire.TypeToken || f.Data == nil {
		return false, "", false, nil
	}
	return true, *f.Data, f.StreamID == p.streamID, nil
}

func (p *amsPeer) Send(ctx context.Context, data string) error {
	return p.conn.WriteRaw(ctx, tokenFrame(data))
}

func (p *amsPeer) Close() { _ = p.conn.CloseNow() }

// ---- floor ----

// floorTarget is the floor's relay (path "/room/"), or with path "/ref/"
// its stand-in for the hosted reference (parse, stamp, forward).
type floorTarget struct {
	srv  *wranglerdev.Server
	http *http.Client
	path string
}

func (f *floorTarget) Name() string {
	if f.path == refPath {
		return "reference stand-in"
	}
	return "floor"
}

const refPath = "/ref/"

// Mint is the floor's POST /mint: the KV operations of an AMS mint in JS.
func (f *floorTarget) Mint(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/mint", strings.NewReader(`{}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer ams_sk_bench")
	res, err := f.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /mint: %s", res.Status)
	}
	return nil
}
func (f *floorTarget) Server() *wranglerdev.Server              { return f.srv }
func (f *floorTarget) Prepare(ctx context.Context, n int) error { return nil }

func (f *floorTarget) NewRoom(ctx context.Context) (room, error) {
	return room{name: "r" + wranglerdev.RandomHex(8)}, nil
}

func (f *floorTarget) Control(ctx context.Context) error {
	return get(ctx, f.http, f.srv.URL+"/healthz")
}

func (f *floorTarget) Health(ctx context.Context) error { return f.Control(ctx) }

func (f *floorTarget) Join(ctx context.Context, r room, slot int) (peer, error) {
	ws, _, err := websocket.Dial(ctx, "ws"+f.srv.URL[len("http"):]+f.path+r.name, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(16 << 20)
	p := &floorPeer{ws: ws}
	// The first usable moment: the room's hello, decoded like any frame.
	if _, _, _, err := p.Read(ctx); err != nil {
		ws.CloseNow()
		return nil, err
	}
	return p, nil
}

type floorPeer struct{ ws *websocket.Conn }

// Read decodes the frame exactly as client.Conn.Read does, so both targets
// cost the load generator the same per delivery.
func (p *floorPeer) Read(ctx context.Context) (bool, string, bool, error) {
	_, raw, err := p.ws.Read(ctx)
	if err != nil {
		return false, "", false, err
	}
	f := &client.Frame{Raw: raw}
	if err := json.Unmarshal(raw, f); err != nil {
		return false, "", false, err
	}
	if f.Type != wire.TypeToken || f.Data == nil {
		return false, "", false, nil
	}
	// The floor does not know streams: a self-echo is detected from the
	// publisher index in the data by the caller.
	return true, *f.Data, false, nil
}

func (p *floorPeer) Send(ctx context.Context, data string) error {
	return p.ws.Write(ctx, websocket.MessageText, tokenFrame(data))
}

func (p *floorPeer) Close() { _ = p.ws.CloseNow() }
