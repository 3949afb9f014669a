package durable

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ams-dev/ams/wire"
)

// awake reports every peer as an open socket, as the adapter finds the
// sockets of an object that slept through nothing.
func awake(peers []*Peer) []Woken {
	found := make([]Woken, len(peers))
	for i, p := range peers {
		found[i] = Woken{Peer: p, Open: true}
	}
	return found
}

// TestRestoreLeavesWhatLeftWhileAsleep: a socket that is no longer open
// when the object wakes (its close woke the object, it failed, or it died
// without a close frame and no event will follow) leaves at once. The
// others get stream_left with the next seq, it is logged for resume, its
// stored metadata is released, a newcomer's joined.peers agrees, and the
// close or error event that may follow announces nothing twice.
func TestRestoreLeavesWhatLeftWhileAsleep(t *testing.T) {
	for _, how := range []string{"closed", "errored", "died without a close frame"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, wire.DefaultLimits)
			pa, _ := h.join("acc_A", "a", false, "")
			pb, _ := h.join("acc_B", "b", false, `{"big":"stored"}`)
			pc, _ := h.join("acc_C", "c", true, "")
			before := h.conv.Seq()

			woken := newHarnessOver(t, wire.DefaultLimits, h.log)
			woken.next = h.next
			peers, socks := restored(t, pa.Attachment, pb.Attachment, pc.Attachment)
			found := awake(peers)
			found[1].Open = false
			woken.conv.Restore(found)

			if woken.conv.Seq() != before+1 {
				t.Fatalf("Seq() = %d, want %d: the leave took no seq", woken.conv.Seq(), before+1)
			}
			for _, i := range []int{0, 2} {
				left := expectFrames(t, peers[i].Name, socks[i], "stream_left")[0]
				if str(t, left["stream_id"]) != pb.StreamID || string(left["seq"]) != "4" {
					t.Errorf("%s got %q", peers[i].Name, socks[i].frames())
				}
			}
			if len(socks[1].sent) != 0 || len(socks[1].closes) != 0 || socks[1].released != 1 {
				t.Errorf("the leaver: sent %q, closes %v, released %d times", socks[1].frames(), socks[1].closes, socks[1].released)
			}
			if last := h.log.events[len(h.log.events)-1]; last.Seq != before+1 || last.StreamID != pb.StreamID {
				t.Errorf("logged %+v, want the stream_left for resume", last)
			}
			if names := streamNames(woken.conv.Streams()); !slices.Equal(names, []string{"a", "c"}) {
				t.Errorf("Streams() = %v", names)
			}

			// The event that may follow finds nothing to announce.
			switch how {
			case "closed", "errored":
				if woken.conv.Leave(pb.ConnID) {
					t.Error("the close event after the wake-up announced the stream again")
				}
			}
			_, sd := woken.join("acc_D", "d", false, "")
			var got []wire.StreamInfo
			_ = json.Unmarshal(decodeFrame(t, sd.frames()[0])["peers"], &got)
			if names := streamNames(got); !slices.Equal(names, []string{"a", "c"}) {
				t.Errorf("newcomer's joined.peers = %v, want a and c", names)
			}
		})
	}
}

// TestRestoreLeaverWithLiveStream: a closing socket whose stream lives on
// in a newer open socket (a takeover's displaced socket) is released
// silently, and two closing sockets of one stream announce it once.
func TestRestoreLeaverWithLiveStream(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	h.join("acc_W", "watcher", false, "")
	displaced := att("conn0050", "acc_A", "a", false, `{}`)
	current := att("conn0060", "acc_A", "a", false, `{}`)
	gone1 := att("conn0070", "acc_B", "b", false, `{}`)
	gone2 := att("conn0080", "acc_B", "b", false, `{}`)
	watcher := att("conn0001", "acc_W", "watcher", false, `{}`)
	peers, socks := restored(t, watcher, displaced, current, gone1, gone2)
	found := awake(peers)
	found[1].Open, found[3].Open, found[4].Open = false, false, false
	woken := newHarnessOver(t, wire.DefaultLimits, h.log)
	woken.conv.Restore(found)

	left := expectFrames(t, "watcher", socks[0], "stream_left")
	if str(t, left[0]["stream_name"]) != "b" {
		t.Errorf("watcher got %q", socks[0].frames())
	}
	for i := 1; i < len(socks); i++ {
		if len(socks[i].closes) != 0 {
			t.Errorf("socket %d closed %v", i, socks[i].closes)
		}
	}
	for _, i := range []int{1, 3, 4} {
		if socks[i].released != 1 {
			t.Errorf("closing socket %d released %d times", i, socks[i].released)
		}
	}
	if names := streamNames(woken.conv.Streams()); !slices.Equal(names, []string{"watcher", "a"}) {
		t.Errorf("Streams() = %v", names)
	}
}

// TestRestoreUnreadableAttachment: an open socket whose attachment does
// not decode cannot be routed and is closed 4500; one already closing is
// left alone; neither is announced.
func TestRestoreUnreadableAttachment(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	peers, socks := restored(t, att("conn0001", "acc_A", "a", false, `{}`))
	open, closing := &recordingSocket{}, &recordingSocket{}
	found := append(awake(peers),
		Woken{Peer: &Peer{Socket: open}, Open: true, Unreadable: true},
		Woken{Peer: &Peer{Socket: closing}, Unreadable: true})
	h.conv.Restore(found)
	if !slices.Equal(open.closes, []wire.Close{wire.CloseInternalError}) || len(closing.closes) != 0 {
		t.Errorf("closes: open %v, closing %v", open.closes, closing.closes)
	}
	if !socks[0].quiet() || h.conv.Len() != 1 || h.conv.Seq() != 0 {
		t.Errorf("the readable peer saw %q; Len %d, Seq %d", socks[0].frames(), h.conv.Len(), h.conv.Seq())
	}
}

func streamNames(streams []wire.StreamInfo) []string {
	var names []string
	for _, s := range streams {
		names = append(names, s.Name)
	}
	return names
}

// TestReceiveOversized: a frame the adapter left unread for its length is
// refused 4400 token_too_large, and the stream leaves; one within the
// bound cannot be judged unread and is left alone.
func TestReceiveOversized(t *testing.T) {
	h := newHarness(t, wire.DefaultLimits)
	pa, sa := h.join("acc_A", "a", false, "")
	_, sb := h.join("acc_B", "b", false, "")
	sa.reset()
	sb.reset()
	h.conv.ReceiveOversized(pa.ConnID, wire.DefaultLimits.FrameChars())
	if !sa.quiet() {
		t.Fatalf("a frame within the bound was refused: %v", sa.closes)
	}
	h.conv.ReceiveOversized(pa.ConnID, 30<<20)
	if !slices.Equal(sa.closes, []wire.Close{wire.CloseTokenTooLarge}) {
		t.Fatalf("closes %v, want token_too_large", sa.closes)
	}
	expectFrames(t, "b", sb, "stream_left")
}

// TestThousandStreamListingsBounded: with the conversation full (1000
// streams, each with metadata at its limit and full of characters an HTML
// escaper would blow up six times), a newcomer's joined frame and the
// object's streams answer stay within wire.Limits.StreamListBytes.
func TestThousandStreamListingsBounded(t *testing.T) {
	limits := wire.DefaultLimits
	h := newHarness(t, limits)
	fill := strings.Repeat("<>&", (limits.MetadataBytes-12)/3)
	metadata := `{"x":"` + fill + `"}`
	if len(metadata) > limits.MetadataBytes {
		t.Fatalf("test metadata is %d bytes", len(metadata))
	}
	var found []Woken
	for i := 0; i < limits.ConnectionsPerConversation-1; i++ {
		account := fmt.Sprintf("acc_%026d", i/limits.StreamsPerAccount)
		a := att(fmt.Sprintf("conn%06d", i), account, fmt.Sprintf("stream-%03d-%s", i, strings.Repeat("n", 40)), false, metadata)
		found = append(found, Woken{Peer: &Peer{Attachment: a, Socket: discardSocket{}}, Open: true})
	}
	h.conv.Restore(found)
	_, s := h.join("acc_NEWCOMER", "newcomer", false, metadata)
	joined := s.frames()[0]
	if n := len(joined); n > limits.StreamListBytes() {
		t.Errorf("joined with %d peers is %d bytes, over the bound %d", limits.ConnectionsPerConversation-1, n, limits.StreamListBytes())
	}
	listing := EncodeStreams(h.conv.Streams())
	if n := len(listing); n > limits.StreamListBytes() {
		t.Errorf("the streams answer is %d bytes, over the bound %d", n, limits.StreamListBytes())
	}
	if !strings.Contains(string(listing), fill) {
		t.Error("the streams answer does not carry the metadata verbatim")
	}
	t.Logf("1000 streams: joined %d bytes, listing %d bytes, bound %d", len(joined), len(listing), limits.StreamListBytes())
}

// discardSocket is a Socket that drops what it is sent.
type discardSocket struct{}

func (discardSocket) Send(*Outbound)    {}
func (discardSocket) Close(wire.Close)  {}
func (discardSocket) Save(a Attachment) {}
