package proxy

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditgate/creditgate/billing"
)

// batchFile is a batch input file of n chat requests for gpt-4o-mini, each
// with its own output cap.
func batchFile(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","max_tokens":%d,"messages":[{"role":"user","content":"Count to %d."}]}}`+"\n", i, 5+i, i)
	}
	return b.Bytes()
}

// objectsOf is one account's objects of every kind, created through the proxy.
type objectsOf struct {
	key, key2                   string // two keys of the account
	file, batch, response, chat string
}

func createObjects(t *testing.T, h *harness, account string) objectsOf {
	t.Helper()
	o := objectsOf{key: h.account(account, "50.00")}
	_, secret, err := h.store.CreateKey(h.ctx, account, "second")
	if err != nil {
		t.Fatal(err)
	}
	o.key2 = secret
	o.file = h.upload(o.key, "in.jsonl", "batch", batchFile(2))
	status, body := h.do(http.MethodPost, "/v1/batches", o.key,
		strings.NewReader(`{"input_file_id":"`+o.file+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`))
	if status != http.StatusOK {
		t.Fatalf("%s: batch: %d %s", account, status, body)
	}
	o.batch = idOf(t, body)
	res := h.post("/v1/responses", o.key, `{"model":"gpt-4o-mini","input":"Hello"}`)
	body = readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: response: %d %s", account, res.StatusCode, body)
	}
	o.response = idOf(t, body)
	res = h.post("/v1/chat/completions", o.key, chatBody("gpt-4o-mini", false, `"store":true,"metadata":{"who":"`+account+`"}`))
	body = readAll(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: chat: %d %s", account, res.StatusCode, body)
	}
	o.chat = idOf(t, body)
	h.inflight.Wait()
	return o
}

// idOfKind is o's object of kind.
func (o objectsOf) idOfKind(kind billing.ObjectKind) string {
	switch kind {
	case billing.ObjectFile:
		return o.file
	case billing.ObjectBatch:
		return o.batch
	case billing.ObjectResponse:
		return o.response
	}
	return o.chat
}

// listIDs is the ids of a list answer.
func listIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var l struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
		HasMore bool `json:"has_more"`
	}
	if err := json.Unmarshal(body, &l); err != nil || l.Object != "list" {
		t.Fatalf("not a list: %s", body)
	}
	var ids []string
	for _, d := range l.Data {
		ids = append(ids, d.ID)
	}
	return ids
}

// TestOwnershipOfEveryObjectRoute: for every stored-object route (objectRoutes,
// so a new route without a case here fails), another account's id — with any
// of its keys — gets the upstream's 404 for an unknown id and nothing reaches
// the upstream; the owner, with any of its keys, is served; lists show only the
// caller's objects.
func TestOwnershipOfEveryObjectRoute(t *testing.T) {
	h, _ := newObjectHarness(t)
	acme := createObjects(t, h, "acme")
	beta := createObjects(t, h, "beta")

	type routeCase struct {
		body  string // for POST routes
		owner int    // the owner's status (0: 200)
	}
	cases := map[string]routeCase{
		"POST /v1/files":                         {},
		"GET /v1/files":                          {},
		"GET /v1/files/{id}":                     {},
		"DELETE /v1/files/{id}":                  {},
		"GET /v1/files/{id}/content":             {},
		"POST /v1/batches":                       {},
		"GET /v1/batches":                        {},
		"GET /v1/batches/{id}":                   {},
		"POST /v1/batches/{id}/cancel":           {},
		"GET /v1/responses/{id}":                 {},
		"DELETE /v1/responses/{id}":              {},
		"GET /v1/responses/{id}/input_items":     {},
		"POST /v1/responses/{id}/cancel":         {owner: http.StatusBadRequest}, // the mock: not a background response
		"GET /v1/chat/completions":               {},
		"GET /v1/chat/completions/{id}":          {},
		"POST /v1/chat/completions/{id}":         {body: `{"metadata":{"k":"v"}}`},
		"DELETE /v1/chat/completions/{id}":       {},
		"GET /v1/chat/completions/{id}/messages": {},
	}
	for _, rt := range objectRoutes {
		if _, ok := cases[rt.method+" "+rt.pattern]; !ok {
			t.Errorf("route %s %s has no ownership case: add one", rt.method, rt.pattern)
		}
	}
	if len(cases) != len(objectRoutes) {
		t.Errorf("%d cases for %d routes", len(cases), len(objectRoutes))
	}

	// The other account's ids, with either of its keys: 404 in OpenAI's shape,
	// and the upstream never asked.
	for _, rt := range objectRoutes {
		if !strings.Contains(rt.pattern, "{id}") {
			continue
		}
		for _, key := range []string{beta.key, beta.key2} {
			id := acme.idOfKind(rt.kind)
			path := strings.Replace(rt.pattern, "{id}", id, 1)
			before := h.upstreamHits(path)
			status, body := h.do(rt.method, path, key, strings.NewReader(cases[rt.method+" "+rt.pattern].body))
			var e struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if status != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Error.Type != "invalid_request_error" || !strings.Contains(e.Error.Message, id) {
				t.Errorf("%s %s with another account's key: %d %s, want 404 naming the id", rt.method, path, status, body)
			}
			if h.upstreamHits(path) != before {
				t.Errorf("%s %s with another account's key reached the upstream", rt.method, path)
			}
			// The same answer as for an id nobody has.
			unknown := strings.Replace(rt.pattern, "{id}", "nobodys-"+string(rt.kind), 1)
			if st, _ := h.do(rt.method, unknown, key, strings.NewReader(cases[rt.method+" "+rt.pattern].body)); st != http.StatusNotFound {
				t.Errorf("%s %s: %d, want 404", rt.method, unknown, st)
			}
		}
	}
	// A batch of another account's input file: 404, nothing held.
	before := h.get("beta").Reserved
	status, body := h.do(http.MethodPost, "/v1/batches", beta.key, strings.NewReader(`{"input_file_id":"`+acme.file+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`))
	if status != http.StatusNotFound || !strings.Contains(string(body), "No such File object: "+acme.file) || h.get("beta").Reserved != before {
		t.Errorf("batch of another account's file: %d %s", status, body)
	}

	// Lists: each account sees its own, with either key.
	for _, tc := range []struct {
		path string
		kind billing.ObjectKind
	}{{"/v1/files", billing.ObjectFile}, {"/v1/batches", billing.ObjectBatch}, {"/v1/chat/completions", billing.ObjectChatCompletion}} {
		for _, who := range []struct {
			o, other objectsOf
		}{{acme, beta}, {beta, acme}} {
			for _, key := range []string{who.o.key, who.o.key2} {
				status, body := h.do(http.MethodGet, tc.path, key, nil)
				ids := listIDs(t, body)
				if status != http.StatusOK || !slices.Contains(ids, who.o.idOfKind(tc.kind)) || slices.Contains(ids, who.other.idOfKind(tc.kind)) {
					t.Errorf("GET %s: %d %v, want %s's and not %s's", tc.path, status, ids, who.o.idOfKind(tc.kind), who.other.idOfKind(tc.kind))
				}
			}
		}
	}

	// The owner, with its second key: served, deletes last.
	var deletes []objectRoute
	for _, rt := range objectRoutes {
		if !strings.Contains(rt.pattern, "{id}") {
			continue
		}
		if rt.method == http.MethodDelete {
			deletes = append(deletes, rt)
			continue
		}
		c := cases[rt.method+" "+rt.pattern]
		path := strings.Replace(rt.pattern, "{id}", acme.idOfKind(rt.kind), 1)
		want := c.owner
		if want == 0 {
			want = http.StatusOK
		}
		if status, body := h.do(rt.method, path, acme.key2, strings.NewReader(c.body), "Content-Type", "application/json"); status != want {
			t.Errorf("%s %s by its owner: %d %s, want %d", rt.method, path, status, body, want)
		}
	}
	for _, rt := range deletes {
		path := strings.Replace(rt.pattern, "{id}", acme.idOfKind(rt.kind), 1)
		if status, body := h.do(rt.method, path, acme.key2, nil); status != http.StatusOK || !strings.Contains(string(body), `"deleted":true`) {
			t.Errorf("DELETE %s by its owner: %d %s", path, status, body)
		}
		// Forgotten: the owner's id is gone, as at the upstream.
		if status, _ := h.do(http.MethodGet, path, acme.key, nil); status != http.StatusNotFound {
			t.Errorf("GET %s after its deletion: %d", path, status)
		}
		ok, err := h.store.OwnsObject(h.ctx, "acme", rt.kind, acme.idOfKind(rt.kind))
		if err != nil || ok {
			t.Errorf("%s %s still recorded after its deletion (%v)", rt.kind, acme.idOfKind(rt.kind), err)
		}
	}
}

// The lists follow the query: files by purpose, chat completions by model and
// metadata, any page size with has_more, either order, the SDKs' after cursor.
func TestObjectLists(t *testing.T) {
	h, clk := newObjectHarness(t)
	key := h.account("acme", "10.00")
	var files []string
	for i := range 5 {
		purpose := "batch"
		if i%2 == 1 {
			purpose = "user_data"
		}
		files = append(files, h.upload(key, fmt.Sprint("f", i), purpose, []byte("x")))
		clk.Advance(time.Millisecond) // records are ordered by creation (then by id)
	}
	other := h.account("beta", "10.00")
	h.upload(other, "theirs", "batch", []byte("y"))
	var chats []string
	for i, model := range []string{"gpt-4o-mini", "gpt-4o", "gpt-4o-mini"} {
		res := h.post("/v1/chat/completions", key, chatBody(model, false, fmt.Sprintf(`"store":true,"metadata":{"n":"%d"}`, i)))
		chats = append(chats, idOf(t, readAll(t, res)))
		clk.Advance(time.Millisecond)
	}
	rev := slices.Clone(files)
	slices.Reverse(rev)
	for _, tc := range []struct {
		path string
		want []string
		more bool
	}{
		{"/v1/files", rev, false},
		{"/v1/files?order=asc", files, false},
		{"/v1/files?purpose=batch", []string{files[4], files[2], files[0]}, false},
		{"/v1/files?purpose=batch&limit=2", []string{files[4], files[2]}, true},
		{"/v1/files?purpose=batch&limit=2&after=" + files[2], []string{files[0]}, false},
		{"/v1/files?limit=2", rev[:2], true},
		{"/v1/files?limit=2&after=" + rev[1], rev[2:4], true},
		{"/v1/files?after=file-unknown", nil, false},
		{"/v1/chat/completions", chats, false},
		{"/v1/chat/completions?model=gpt-4o", chats[1:2], false},
		{"/v1/chat/completions?metadata%5Bn%5D=2", chats[2:], false},
		{"/v1/chat/completions?order=desc&limit=1", chats[2:], true},
	} {
		status, body := h.do(http.MethodGet, tc.path, key, nil)
		var l struct {
			FirstID, LastID *string
			HasMore         bool `json:"has_more"`
		}
		json.Unmarshal(body, &l)
		if ids := listIDs(t, body); status != http.StatusOK || !slices.Equal(ids, tc.want) || l.HasMore != tc.more {
			t.Errorf("GET %s: %d %v more=%v, want %v more=%v", tc.path, status, ids, l.HasMore, tc.want, tc.more)
		}
	}
	if status, _ := h.do(http.MethodGet, "/v1/files?limit=zero", key, nil); status != http.StatusBadRequest {
		t.Errorf("limit=zero: %d", status)
	}
	// A file the upstream lost is dropped from the list and forgotten.
	h.do(http.MethodDelete, "/v1/files/"+files[0], "", nil) // no key: refused, nothing happens
	req, _ := http.NewRequest(http.MethodDelete, h.upstream.URL+"/v1/files/"+files[0], nil)
	req.Header.Set("Authorization", "Bearer "+upstreamKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if _, body := h.do(http.MethodGet, "/v1/files?order=asc", key, nil); !slices.Equal(listIDs(t, body), files[1:]) {
		t.Errorf("after the upstream lost %s: %v", files[0], listIDs(t, body))
	}
	if ok, _ := h.store.OwnsObject(h.ctx, "acme", billing.ObjectFile, files[0]); ok {
		t.Error("a file the upstream lost is still recorded")
	}
}

// failingObjects is an ObjectStore that fails PutObject.
type failingObjects struct {
	billing.ObjectStore
	put func(account string, kind billing.ObjectKind, id string) error
}

func (f failingObjects) PutObject(ctx context.Context, account string, kind billing.ObjectKind, id string, at time.Time) error {
	if err := f.put(account, kind, id); err != nil {
		return err
	}
	return f.ObjectStore.PutObject(ctx, account, kind, id, at)
}

// Uploads: bounded (a huge declared size refused unread, a body that outgrows
// the limit cut with 413), recorded before the app learns the id, and a file
// the store cannot record is deleted at the upstream and answered 503.
func TestFileUploads(t *testing.T) {
	var failPuts bool
	h, _ := newObjectHarness(t, func(o *Options) {
		o.MaxBodyBytes = 64 << 10
		o.Objects = failingObjects{ObjectStore: o.Objects, put: func(string, billing.ObjectKind, string) error {
			if failPuts {
				return fmt.Errorf("%w: redis down", billing.ErrUnavailable)
			}
			return nil
		}}
	})
	key := h.account("acme", "5.00")

	t.Run("recorded", func(t *testing.T) {
		id := h.upload(key, "a.txt", "user_data", []byte("hello"))
		if status, body := h.do(http.MethodGet, "/v1/files/"+id+"/content", key, nil); status != http.StatusOK || string(body) != "hello" {
			t.Fatalf("content: %d %q", status, body)
		}
	})
	t.Run("a 1 GB declared upload", func(t *testing.T) {
		before := h.upstreamHits("/v1/files")
		r := &countingReader{r: io.LimitReader(zeros{}, 1<<30)}
		req, _ := http.NewRequest(http.MethodPost, h.server.URL+"/v1/files", r)
		req.ContentLength = 1 << 30
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, res)
		if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "request_too_large") {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
		if n := r.n.Load(); n > 16<<20 {
			t.Fatalf("%d bytes read of a refused upload", n)
		}
		if h.upstreamHits("/v1/files") != before {
			t.Fatal("a refused upload reached the upstream")
		}
	})
	t.Run("a body that outgrows the limit", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte("--x\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"))
			pw.Write(make([]byte, 128<<10))
			pw.Write([]byte("\r\n--x--\r\n"))
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, h.server.URL+"/v1/files", pr) // chunked: no length declared
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, res)
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
	})
	t.Run("not recorded: deleted again, 503", func(t *testing.T) {
		failPuts = true
		defer func() { failPuts = false }()
		status, body := h.uploadRaw(key, "b.txt", "user_data", []byte("lost"))
		if status != http.StatusServiceUnavailable || strings.Contains(string(body), "file-") {
			t.Fatalf("%d %s", status, body)
		}
		deletes := 0
		for _, r := range h.mock.Requests() {
			if r.Method == http.MethodDelete && strings.HasPrefix(r.Path, "/v1/files/") {
				deletes++
			}
		}
		if deletes != 1 {
			t.Fatalf("%d deletes at the upstream, want 1", deletes)
		}
	})
	t.Run("no key", func(t *testing.T) {
		if status, _ := h.uploadRaw("", "c.txt", "user_data", []byte("x")); status != http.StatusUnauthorized {
			t.Fatalf("%d", status)
		}
	})
}

// Stored responses and chat completions are recorded as they are created, so
// an immediate read by the owner finds them (streamed ones too), and a request
// that does not store creates no record.
func TestStoredAnswersRecorded(t *testing.T) {
	h, _ := newObjectHarness(t)
	key := h.account("acme", "5.00")
	for _, tc := range []struct {
		name, path, body string
		stream           bool
		kind             billing.ObjectKind
		stored           bool
	}{
		{"response", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hi"}`, false, billing.ObjectResponse, true},
		{"streamed response", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hi","stream":true}`, true, billing.ObjectResponse, true},
		{"response not stored", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hi","store":false}`, false, billing.ObjectResponse, false},
		{"chat stored", "/v1/chat/completions", chatBody("gpt-4o-mini", false, `"store":true`), false, billing.ObjectChatCompletion, true},
		{"chat", "/v1/chat/completions", chatBody("gpt-4o-mini", false, ""), false, billing.ObjectChatCompletion, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := h.post(tc.path, key, tc.body)
			body := readAll(t, res)
			var id string
			if tc.stream {
				var first struct {
					Response struct{ ID string } `json:"response"`
				}
				json.Unmarshal([]byte(sseEvents(body)[0]), &first)
				id = first.Response.ID
			} else {
				id = idOf(t, body)
			}
			ok, err := h.store.OwnsObject(h.ctx, "acme", tc.kind, id)
			if err != nil || ok != tc.stored {
				t.Fatalf("%s recorded: %v %v, want %v", id, ok, err, tc.stored)
			}
			if ev := h.lastEvent("acme"); ev.Type != billing.EventUsage || ev.Cost <= 0 {
				t.Fatalf("not billed as usual: %+v", ev)
			}
		})
	}
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
