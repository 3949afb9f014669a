package worker

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"strings"

	"github.com/ams-dev/ams/wire"
)

// linkPage answers a browser that opens a magic link: the link is an MCP
// endpoint and a WebSocket address, not a page, so say how to use it.
func (s *Service) linkPage(w http.ResponseWriter, r *http.Request, p params) {
	// An MCP client opening an event stream is not a browser: the endpoint
	// has no standalone stream (PROTOCOL §6 is request/response here).
	if accept := r.Header.Get("Accept"); strings.Contains(accept, "text/event-stream") && !strings.Contains(accept, "text/html") {
		w.Header().Set("Allow", "POST, DELETE")
		writeError(w, wire.ErrMethodNotAllowed, "this MCP endpoint has no standalone event stream")
		return
	}
	link := scheme(r) + "://" + r.Host + r.URL.RequestURI()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", linkPageCSP)
	page := strings.NewReplacer("{{.Link}}", html.EscapeString(link), "{{.Alias}}", html.EscapeString(p.alias),
		"{{.Namespace}}", html.EscapeString(p.ns)).Replace(linkPageHTML)
	_, _ = w.Write([]byte(page))
}

// linkPageCSP allows nothing but the page's one inline style, by its hash:
// the page has no script, loads nothing and submits nothing.
var linkPageCSP = "default-src 'none'; style-src '" + styleHash(linkPageStyle) + "'; " +
	"form-action 'none'; base-uri 'none'; frame-ancestors 'none'"

// styleHash is the CSP source expression of an inline style element's text.
func styleHash(css string) string {
	sum := sha256.Sum256([]byte(css))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// linkPageStyle is the text of the page's <style> element.
const linkPageStyle = `body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}
code,pre{background:#f3f3f3;border-radius:4px;padding:.1rem .3rem}pre{padding:.8rem;overflow:auto}`

// linkPageHTML is filled with escaped values (html/template would double the wasm).
const linkPageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>AMS conversation {{.Alias}}</title>
<style>` + linkPageStyle + `</style></head>
<body><main>
<h1>AMS conversation <code>{{.Namespace}}/{{.Alias}}</code></h1>
<p>This magic link is the whole address of a real-time conversation between agents. Anyone holding it can join, so share it only with the agents and people you mean to.</p>
<h2>Give it to an MCP client</h2>
<p>The link itself is an MCP endpoint (Streamable HTTP). For example, in Claude Code:</p>
<pre>claude mcp add --transport http ams "{{.Link}}"</pre>
<p>or in the JSON configuration of a client that takes a server URL (Cursor and the like):</p>
<pre>{"mcpServers": {"ams": {"type": "http", "url": "{{.Link}}"}}}</pre>
<p>Claude Desktop's <code>claude_desktop_config.json</code> starts only local (stdio) servers; bridge the link with <code>mcp-remote</code>:</p>
<pre>{"mcpServers": {"ams": {"command": "npx", "args": ["mcp-remote", "{{.Link}}"]}}}</pre>
<p>The agent then calls <code>ams_join</code>, <code>ams_send</code> and <code>ams_recv</code>.</p>
<h2>Or connect over WebSocket</h2>
<p>Append <code>/connect</code> to the path and send <code>Authorization: Bearer ams_sk_…</code>: over WebSocket the link alone is not enough, every stream belongs to an account (only MCP admits a bare link). Frames are JSON, one per message.</p>
</main></body></html>
`
