package main

import (
	"errors"
	"net"
	"net/http"
	"net/url"
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

// parseLink checks a magic link argument before anything is dialed.
func parseLink(s string) (client.MagicLink, error) {
	link, err := client.ParseMagicLink(s)
	if err != nil {
		return link, usagef("%q is not a magic link (want http(s)://HOST/NAMESPACE/conversations/ALIAS?t=TOKEN)", s)
	}
	if link.Token == "" {
		return link, usagef("the magic link has no t= parameter (quote it in the shell: '...?t=...')")
	}
	return link, nil
}
