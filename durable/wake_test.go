package durable

import (
	"encoding/json"
	"slices"
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
