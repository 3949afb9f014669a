package wire

import (
	"fmt"
	"net/url"
	"strings"
)

// MagicLink is a conversation's address:
// {scheme}://{host}/{ns}/conversations/{alias}?t={token}.
type MagicLink struct {
	Origin    string // scheme://host
	Namespace string
	Alias     string
	Token     string
}

// ParseMagicLink splits a magic link into its parts.
func ParseMagicLink(link string) (MagicLink, error) {
	u, err := url.Parse(link)
	if err != nil {
		return MagicLink{}, err
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 3 || parts[1] != "conversations" || u.Host == "" {
		return MagicLink{}, fmt.Errorf("ams: %q is not a magic link", link)
	}
	return MagicLink{Origin: u.Scheme + "://" + u.Host, Namespace: parts[0], Alias: parts[2], Token: u.Query().Get("t")}, nil
}

// String renders the link.
func (l MagicLink) String() string {
	return l.Origin + "/" + l.Namespace + "/conversations/" + l.Alias + "?t=" + url.QueryEscape(l.Token)
}

// ConnectURL is the WebSocket endpoint of the link: its path plus /connect.
func (l MagicLink) ConnectURL() string {
	return l.Origin + "/" + l.Namespace + "/conversations/" + l.Alias + "/connect?t=" + url.QueryEscape(l.Token)
}
