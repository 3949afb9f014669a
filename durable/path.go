package durable

import (
	"net/url"
	"strings"
)

// internalOrigin is the origin of the Worker's requests to an object
// (worker.internalOrigin).
const internalOrigin = "https://conversation.internal/"

// requestPath is url.Parse(raw).Path for the URL of a request to an object.
// The Worker's URLs are read without url.Parse, which cost a join more
// than the rest of the object's routing (BENCHMARKS.md, issue 12).
func requestPath(raw string) (string, error) {
	if rest, ok := strings.CutPrefix(raw, internalOrigin); ok && plainPath(rest) {
		return "/" + rest, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Path, nil
}

// plainPath reports whether p is printable ASCII with no query, fragment or
// escape: a path url.Parse would return as it is.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' || c == '%' {
			return false
		}
	}
	return true
}
