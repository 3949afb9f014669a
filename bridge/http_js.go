package bridge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"syscall/js"

	"github.com/ams-dev/ams/wire"
)

var (
	arrayClass      = js.Global().Get("Array")
	jsonStringify   = js.Global().Get("JSON").Get("stringify")
	objectClass     = js.Global().Get("Object")
	responseClass   = js.Global().Get("Response")
	uint8ArrayClass = js.Global().Get("Uint8Array")
)

// Request converts a JS Request to an *http.Request whose body streams from
// the JS body on demand, so a size limit stops reading early.
func Request(ctx context.Context, jsReq js.Value) (*http.Request, error) {
	u, err := url.Parse(jsReq.Get("url").String())
	if err != nil {
		return nil, err
	}
	header := Header(jsReq.Get("headers"))
	req := &http.Request{
		Method:     jsReq.Get("method").String(),
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       u.Host,
		RequestURI: u.RequestURI(),
		Body:       http.NoBody,
	}
	if n, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil {
		req.ContentLength = n
	}
	if body := jsReq.Get("body"); body.Truthy() {
		req.Body = &streamReader{stream: body}
	}
	return req.WithContext(ctx), nil
}

// Header converts a JS Headers object. The entries cross as one JSON string:
// reading them pair by pair costs three calls into JS per header.
func Header(jsHeaders js.Value) http.Header {
	entries, err := wire.DecodeStringPairs([]byte(jsonStringify.Invoke(arrayClass.Call("from", jsHeaders)).String()))
	if err != nil {
		return http.Header{}
	}
	header := make(http.Header, len(entries))
	for _, e := range entries {
		header.Add(e[0], e[1])
	}
	return header
}

// JSHeaders converts h to a plain object for a Response or Request init.
func JSHeaders(h http.Header) js.Value {
	obj := objectClass.New()
	for name, values := range h {
		for _, v := range values {
			if existing := obj.Get(name); existing.Truthy() {
				v = existing.String() + ", " + v
			}
			obj.Set(name, v)
		}
	}
	return obj
}

// streamReader reads a JS ReadableStream through its default reader, taken
// on the first Read so that an unread body stays unlocked for the runtime.
type streamReader struct {
	stream js.Value
	reader js.Value
	buf    []byte
	done   bool
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.reader.IsUndefined() && !s.done {
		s.reader = s.stream.Call("getReader")
	}
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		chunk, err := Await(s.reader.Call("read"))
		if err != nil {
			return 0, err
		}
		if chunk.Get("done").Bool() {
			s.done = true
			continue
		}
		value := chunk.Get("value")
		s.buf = make([]byte, value.Length())
		js.CopyBytesToGo(s.buf, value)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// drainBytes bounds what Close reads of an unread body rather than cancel
// it: cancelling (or leaving) a request body still in flight makes workerd
// reset the connection, which the client sees instead of the answer (a 413
// for an oversized body; wrangler dev says "Your worker restarted
// mid-request"). Past the bound, beyond any plan's request size limit on
// Cloudflare, the connection is reset after all.
const drainBytes = 128 << 20

// Close discards the rest of the body and unlocks the stream.
func (s *streamReader) Close() error {
	if !s.reader.IsUndefined() {
		for drained := 0; !s.done && drained < drainBytes; {
			chunk, err := Await(s.reader.Call("read"))
			if err != nil || chunk.Get("done").Bool() {
				s.done = true
				break
			}
			drained += chunk.Get("value").Length()
		}
		if !s.done {
			s.reader.Call("cancel")
		}
		s.reader.Call("releaseLock")
		s.reader = js.Undefined()
	}
	s.done = true
	return nil
}

// ResponseWriter buffers a handler's response for conversion to JS.
type ResponseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// NewResponseWriter returns an empty 200 response.
func NewResponseWriter() *ResponseWriter {
	return &ResponseWriter{header: http.Header{}, status: http.StatusOK}
}

func (w *ResponseWriter) Header() http.Header { return w.header }

func (w *ResponseWriter) WriteHeader(status int) { w.status = status }

func (w *ResponseWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

// JSResponse converts the buffered response to a JS Response.
func (w *ResponseWriter) JSResponse() js.Value {
	return NewResponse(w.status, w.header, w.body.Bytes())
}

// NewResponse builds a JS Response.
func NewResponse(status int, header http.Header, body []byte) js.Value {
	init := objectClass.New()
	init.Set("status", status)
	init.Set("headers", JSHeaders(header))
	jsBody := js.Null()
	if len(body) > 0 && status != http.StatusNoContent && status != http.StatusNotModified {
		jsBody = uint8ArrayClass.New(len(body))
		js.CopyBytesToJS(jsBody, body)
	}
	return responseClass.New(jsBody, init)
}
