package main

import (
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ams-dev/ams/client"
)

// controlTimeout bounds one control-plane call.
const controlTimeout = 30 * time.Second

func controlClient(host, credential string) *client.Client {
	return &client.Client{BaseURL: host, Credential: credential, HTTP: &http.Client{Timeout: controlTimeout}}
}

// wrapNetwork names the broker in a transport failure; other errors pass.
func wrapNetwork(err error, host string) error {
	if err == nil {
		return nil
	}
	var api *client.APIError
	if errors.As(err, &api) {
		return err
	}
	if code, _ := client.CloseOf(err); code != -1 {
		return err
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) || errors.As(err, &oe) {
		return &networkError{msg: "cannot reach the broker at " + host + ": " + rootCause(err), err: err}
	}
	return err
}

// rootCause is the innermost error text, without the URL repeated.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// parseLink checks a magic link before anything is dialed. The link is
// a secret (its t), so an error quotes only its shape.
func parseLink(s string) (client.MagicLink, error) {
	link, err := client.ParseMagicLink(strings.TrimSpace(s))
	if err != nil {
		return link, usagef("that is not a magic link (want http(s)://HOST/NAMESPACE/conversations/ALIAS?t=TOKEN)")
	}
	if link.Token == "" {
		return link, usagef("the magic link has no t= parameter (quote it in the shell: '...?t=...')")
	}
	return link, nil
}

// linkFlags are where a command may read its magic link from besides
// argv, which any user of the machine can read in the process list.
type linkFlags struct{ file string }

func (l *linkFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.file, "link-file", "", "")
}

// maxLinkFile bounds what --link-file reads: a link is well under 1 KiB.
const maxLinkFile = 16 << 10

// resolveLink finds the magic link: the first of the positional arguments
// when they number `full`, else --link-file (its first line; "-" is
// stdin, unless the command reads stdin itself), else AMS_LINK. It
// returns the link and the positional arguments that follow it.
func (l *linkFlags) resolve(pos []string, full int, stdinBusy bool, env Env) (client.MagicLink, []string, error) {
	var text string
	switch {
	case len(pos) == full:
		if l.file != "" {
			return client.MagicLink{}, nil, usagef("two magic links: one as an argument and one from --link-file")
		}
		text, pos = pos[0], pos[1:]
	case l.file == "-" && stdinBusy:
		return client.MagicLink{}, nil, usagef("--link-file - reads stdin, which this command uses for tokens: give a file or AMS_LINK")
	case l.file != "":
		var r io.Reader = env.Stdin
		if l.file != "-" {
			f, err := os.Open(l.file)
			if err != nil {
				return client.MagicLink{}, nil, usagef("cannot read --link-file: %v", err)
			}
			defer f.Close()
			r = f
		}
		raw, err := io.ReadAll(io.LimitReader(r, maxLinkFile))
		if err != nil {
			return client.MagicLink{}, nil, usagef("cannot read --link-file: %v", err)
		}
		text, _, _ = strings.Cut(strings.TrimSpace(string(raw)), "\n")
	case env.Getenv("AMS_LINK") != "":
		text = env.Getenv("AMS_LINK")
	default:
		return client.MagicLink{}, nil, usagef("missing magic link: pass it as LINK, with --link-file FILE, or in AMS_LINK")
	}
	link, err := parseLink(text)
	return link, pos, err
}
