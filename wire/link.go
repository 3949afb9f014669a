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
	// Extra holds the link's other query parameters (browser-join forms).
	Extra url.Values
}

// ParseMagicLink splits a magic link into its parts.
func ParseMagicLink(link string) (MagicLink, error) {
	u, err := url.Parse(link)
	if err != nil {
		return MagicLink{}, err
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 3 || parts[1] != "conversations" || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return MagicLink{}, fmt.Errorf("ams: %q is not a magic link", link)
	}
	query := u.Query()
	token := query.Get("t")
	query.Del("t")
	ml := MagicLink{Origin: u.Scheme + "://" + u.Host, Namespace: parts[0], Alias: parts[2], Token: token}
	if len(query) > 0 {
		ml.Extra = query
	}
	return ml, nil
}

// String renders the link.
func (l MagicLink) String() string {
	return l.Origin + "/" + l.Namespace + "/conversations/" + l.Alias + "?t=" + url.QueryEscape(l.Token)
}

// ConnectURL is the WebSocket endpoint of the link: its path plus /connect,
// keeping any extra query parameters.
func (l MagicLink) ConnectURL() string {
	u := l.Origin + "/" + l.Namespace + "/conversations/" + l.Alias + "/connect?t=" + url.QueryEscape(l.Token)
	if len(l.Extra) > 0 {
		u += "&" + l.Extra.Encode()
	}
	return u
}
