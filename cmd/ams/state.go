package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/ams-dev/ams/client"
)

// resumeState is the file `--resume` keeps between runs: where each stream
// stopped reading, so the next run asks the broker for exactly what it
// missed. It holds no secret (the link's t is not part of any key).
type resumeState struct {
	// Seqs maps conversationKey + "/" + stream name to the last seq received.
	Seqs map[string]int64 `json:"seqs"`
	// Names maps conversationKey + "#" + command to the stream name that
	// command used last, so `ams join --resume LINK` without --name comes
	// back as the same stream.
	Names map[string]string `json:"names"`
}

// conversationKey names a conversation without its token: a rotated link
// still resumes.
func conversationKey(link client.MagicLink) string {
	return link.Origin + "/" + link.Namespace + "/" + link.Alias
}

func seqKey(link client.MagicLink, stream string) string {
	return conversationKey(link) + "/" + stream
}

func nameKey(link client.MagicLink, command string) string {
	return conversationKey(link) + "#" + command
}

// statePath resolves the state file: AMS_STATE, $XDG_STATE_HOME/ams/resume.json,
// then ~/.local/state/ams/resume.json.
func statePath(getenv func(string) string) (string, error) {
	if p := getenv("AMS_STATE"); p != "" {
		return p, nil
	}
	return userFile(getenv, "XDG_STATE_HOME", ".local/state", "resume.json")
}

func loadState(path string) (*resumeState, error) {
	st := &resumeState{Seqs: map[string]int64{}, Names: map[string]string{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, usagef("cannot read resume state %s: %v", path, err)
	}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, usagef("resume state %s is not valid JSON (delete it to start over): %v", path, err)
	}
	if st.Seqs == nil {
		st.Seqs = map[string]int64{}
	}
	if st.Names == nil {
		st.Names = map[string]string{}
	}
	return st, nil
}

// recordPosition saves one stream's name and last seq, re-reading the file
// first so other streams' entries written meanwhile are kept.
func recordPosition(path string, link client.MagicLink, command, stream string, seq int64) error {
	st, err := loadState(path)
	if err != nil {
		return err
	}
	st.Names[nameKey(link, command)] = stream
	st.Seqs[seqKey(link, stream)] = seq
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writePrivateFile(path, append(raw, '\n'))
}
