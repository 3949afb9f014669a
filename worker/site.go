package worker

import (
	"embed"
	"html"
	"net/http"
	"path"
	"strings"

	"github.com/ams-dev/ams/wire"
)

// The page at / is embedded in the Go program rather than served as Workers
// static assets: its protocol section is rendered from Routes, the table the
// router itself uses, so the documentation cannot drift from the code; and
// one artifact deploys everything. It weighs about 20 KB, against the
// program's megabytes.
//
//go:embed site
var site embed.FS

var siteTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

// homePage is GET /: the live demo and the protocol, against this host.
func (s *Service) homePage(w http.ResponseWriter, r *http.Request, _ params) {
	page, _ := site.ReadFile("site/index.html")
	origin := scheme(r) + "://" + r.Host
	out := strings.NewReplacer(
		"{{protocol}}", protocolSection(origin),
		"{{origin}}", html.EscapeString(origin),
	).Replace(string(page))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", homePageCSP(r.Host))
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(out))
}

// homePageCSP lets the page talk to its own origin only: fetch through
// 'self', the WebSocket through ws:// and wss:// of the page's host (a
// browser does not match ws: against 'self' everywhere). The page submits
// no form anywhere and sets no base, so form-action and base-uri are
// 'none'. A Host that is not a plain host[:port] gets 'self' alone rather
// than being pasted into the policy.
func homePageCSP(host string) string {
	connect := "'self'"
	if cspHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; connect-src " + connect + "; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
		"form-action 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
}

// cspHost reports whether host is letters, digits, '.', '-', ':', '[' and
// ']' only: a host, an IPv6 literal or either with a port.
func cspHost(host string) bool {
	if host == "" {
		return false
	}
	for _, c := range host {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)
		if !ok {
			return false
		}
	}
	return true
}

// siteAsset is GET /site/{asset}.
func (s *Service) siteAsset(w http.ResponseWriter, _ *http.Request, p params) {
	body, err := site.ReadFile("site/" + p.asset)
	typ, known := siteTypes[path.Ext(p.asset)]
	if err != nil || !known || strings.Contains(p.asset, "..") {
		writeErrorJSON404(w, p.asset)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

func writeErrorJSON404(w http.ResponseWriter, asset string) {
	writeError(w, wire.ErrNotFound, "no asset "+asset)
}

// protocolSection renders every documented route with a copy-paste example
// against origin.
func protocolSection(origin string) string {
	var b strings.Builder
	for _, route := range Routes {
		if route.Doc == "" {
			continue
		}
		method := allowed(route)
		if method == "GET, HEAD" {
			method = "GET"
		}
		example := "curl " + origin + exampleURL(route.Pattern)
		display := route.Pattern
		if strings.HasSuffix(route.Pattern, "/connect") {
			method, display = "WS", "{magic_link}/connect"
			example = "# WebSocket upgrade on " + origin + "/demo-9421/conversations/{alias}/connect?t=…\n" + route.Example
		} else if method == "POST" {
			example = "curl -X POST " + origin + exampleURL(route.Pattern) + " \\\n  -H 'content-type: application/json'"
			if strings.Contains(route.Pattern, "{ns}") {
				example += " \\\n  -H 'authorization: Bearer ams_sk_…'"
			}
			example += " \\\n  -d '" + route.Example + "'"
		} else if strings.Contains(route.Pattern, "{alias}") {
			example += "?t=…'"
			example = strings.Replace(example, "curl ", "curl '", 1)
		}
		b.WriteString(`<article class="endpoint"><h3><span class="method">` + method + `</span> <code>` +
			html.EscapeString(display) + `</code></h3><p>` + html.EscapeString(route.Doc) + `</p>` +
			`<div class="codebox"><pre><code>` + html.EscapeString(example) + `</code></pre>` +
			`<button type="button" class="copy" data-copy-previous>Copy</button></div></article>`)
	}
	return b.String()
}

func exampleURL(pattern string) string {
	return strings.NewReplacer("{ns}", "demo-9421", "{alias}", "swift-falcon-4821").Replace(pattern)
}
