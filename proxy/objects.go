package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/internal/stdlog"
)

// Stored objects — files, batches, stored responses and stored chat
// completions — live at the upstream, under the operator's one upstream key,
// so every account's objects are side by side there. The proxy keeps them
// apart: each object is recorded for the account whose request created it
// (billing.ObjectStore), and every route that names an object is answered only
// for that account; anyone else, with any key, gets the 404 the upstream gives
// for an id that does not exist, before anything is forwarded. Lists are the
// caller's records, each object fetched from the upstream. objectRoutes is
// every such route: a new one is one line there (and one case in the
// ownership table test, which fails without it).

// objectRoute is one stored-object route.
type objectRoute struct {
	method  string
	pattern string // "{id}" matches one path segment, the object's id
	kind    billing.ObjectKind
	serve   func(p *Proxy, c *objectCall)
}

var objectRoutes = []objectRoute{
	{http.MethodPost, "/v1/files", billing.ObjectFile, (*Proxy).uploadFile},
	{http.MethodGet, "/v1/files", billing.ObjectFile, (*Proxy).listObjects},
	{http.MethodGet, "/v1/files/{id}", billing.ObjectFile, (*Proxy).passOwned},
	{http.MethodDelete, "/v1/files/{id}", billing.ObjectFile, (*Proxy).passOwned},
	{http.MethodGet, "/v1/files/{id}/content", billing.ObjectFile, (*Proxy).passOwned},
	{http.MethodPost, "/v1/batches", billing.ObjectBatch, (*Proxy).createBatch},
	{http.MethodGet, "/v1/batches", billing.ObjectBatch, (*Proxy).listObjects},
	{http.MethodGet, "/v1/batches/{id}", billing.ObjectBatch, (*Proxy).passOwned},
	{http.MethodPost, "/v1/batches/{id}/cancel", billing.ObjectBatch, (*Proxy).passOwned},
	{http.MethodGet, "/v1/responses/{id}", billing.ObjectResponse, (*Proxy).passOwned},
	{http.MethodDelete, "/v1/responses/{id}", billing.ObjectResponse, (*Proxy).passOwned},
	{http.MethodGet, "/v1/responses/{id}/input_items", billing.ObjectResponse, (*Proxy).passOwned},
	{http.MethodPost, "/v1/responses/{id}/cancel", billing.ObjectResponse, (*Proxy).passOwned},
	{http.MethodGet, "/v1/chat/completions", billing.ObjectChatCompletion, (*Proxy).listObjects},
	{http.MethodGet, "/v1/chat/completions/{id}", billing.ObjectChatCompletion, (*Proxy).passOwned},
	{http.MethodPost, "/v1/chat/completions/{id}", billing.ObjectChatCompletion, (*Proxy).passOwned},
	{http.MethodDelete, "/v1/chat/completions/{id}", billing.ObjectChatCompletion, (*Proxy).passOwned},
	{http.MethodGet, "/v1/chat/completions/{id}/messages", billing.ObjectChatCompletion, (*Proxy).passOwned},
}

// objectCall is one request to a stored-object route.
type objectCall struct {
	w     http.ResponseWriter
	r     *http.Request
	route *objectRoute
	key   billing.APIKey
	id    string // "" for the routes without {id}

	// upload: the body went past MaxBodyBytes (set while forwarding).
	tooLarge bool
	// created, when set, records what a 2xx answer created (its body, read
	// whole); an error answers 503 and undoes what it can.
	created func(ctx context.Context, body []byte) error
	// refused is the error the upstream's answer was turned into.
	refused *apiError
}

type objectCallKey struct{}

func objectCallFrom(ctx context.Context) *objectCall {
	c, _ := ctx.Value(objectCallKey{}).(*objectCall)
	return c
}

// objectState is the proxy's part for stored objects, CORS and the catalogue.
type objectState struct {
	started time.Time
	cors    *corsPolicy
	rp      *httputil.ReverseProxy // forwards the object routes
}

// newObjectState builds the object routes' forwarding; called by New.
func (p *Proxy) newObjectState() *objectState {
	return &objectState{
		started: p.opts.Now(),
		cors:    newCORSPolicy(p.opts.CORS),
		rp: &httputil.ReverseProxy{
			Rewrite:        p.rewrite,
			Transport:      p.opts.Transport,
			ModifyResponse: p.modifyObjectResponse,
			ErrorHandler:   p.objectUpstreamError,
			BufferPool:     bufferPool{},
			ErrorLog:       stdlog.New(p.log.Named("reverseproxy")),
		},
	}
}

// matchObjectRoute finds the route of method and path. pathKnown is true when
// some route has that path (with another method, the answer is the 404 of any
// path not served).
func matchObjectRoute(method, path string) (route *objectRoute, id string, pathKnown bool) {
	segs := strings.Split(path, "/")
	for i := range objectRoutes {
		rt := &objectRoutes[i]
		pat := strings.Split(rt.pattern, "/")
		if len(pat) != len(segs) {
			continue
		}
		var got string
		ok := true
		for j, s := range pat {
			switch {
			case s == "{id}" && segs[j] != "":
				got = segs[j]
			case s != segs[j]:
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok {
			continue
		}
		pathKnown = true
		if rt.method == method {
			return rt, got, true
		}
	}
	return nil, "", pathKnown
}

// serveObject serves a stored-object route, and reports false when path and
// method are not one (nor is there an object store to serve them with).
func (p *Proxy) serveObject(w http.ResponseWriter, r *http.Request) bool {
	if p.opts.Objects == nil {
		return false
	}
	route, id, _ := matchObjectRoute(r.Method, r.URL.Path)
	if route == nil {
		return false
	}
	key, _, aerr := p.authenticate(r)
	if aerr != nil {
		if r.ContentLength != 0 {
			w.Header().Set("Connection", "close") // the body is not read (see authenticateKey)
		}
		writeError(w, aerr)
		return true
	}
	noteCaller(w, key)
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.Timeout)
	defer cancel()
	c := &objectCall{w: w, route: route, key: key, id: id}
	c.r = r.WithContext(context.WithValue(ctx, objectCallKey{}, c))
	route.serve(p, c)
	return true
}

// owns answers 404 (or 503) unless the caller's account created the call's
// object, and reports whether it did.
func (p *Proxy) owns(c *objectCall) bool { return p.ownsObject(c, c.route.kind, c.id) }

// ownsObject is owns for another object than the route's (a batch's input file).
func (p *Proxy) ownsObject(c *objectCall, kind billing.ObjectKind, id string) bool {
	ok, err := p.opts.Objects.OwnsObject(c.r.Context(), c.key.Account, kind, id)
	if err != nil {
		writeError(c.w, p.storeError(err, "object ownership lookup failed", zap.String("kind", string(kind))))
		return false
	}
	if !ok {
		writeError(c.w, errNoSuchObject(kind, id))
	}
	return ok
}

// errNoSuchObject is what the upstream answers for an id that does not exist:
// another account's object is answered the same, so it cannot be told apart.
func errNoSuchObject(kind billing.ObjectKind, id string) *apiError {
	e := &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: "id"}
	switch kind {
	case billing.ObjectFile:
		e.message = "No such File object: " + id
	case billing.ObjectBatch:
		e.message = "No batch found with id '" + id + "'."
	case billing.ObjectResponse:
		e.message, e.param = "Response with id '"+id+"' not found.", ""
	default:
		e.message = "Chat completion with id '" + id + "' not found."
	}
	return e
}

// passOwned forwards a request that names an object the caller owns. A body
// (updating a chat completion's metadata) is bounded like any other.
func (p *Proxy) passOwned(c *objectCall) {
	if !p.owns(c) {
		return
	}
	r := c.r
	if r.ContentLength > p.opts.MaxBodyBytes {
		writeError(c.w, errTooLarge(p.opts.MaxBodyBytes))
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodDelete {
		r.Body, r.ContentLength = http.NoBody, 0
	} else {
		r.Body = &limitedBody{rc: http.MaxBytesReader(c.w, r.Body, p.opts.MaxBodyBytes), c: c}
	}
	p.objects.rp.ServeHTTP(c.w, r)
}

// limitedBody notes, for the answer, that a forwarded body went past its limit.
type limitedBody struct {
	rc io.ReadCloser
	c  *objectCall
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.c.tooLarge = true
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// maxObjectBody bounds an object's JSON the proxy reads (to record what it
// created, or its batch's files): OpenAI's objects are a few KiB.
const maxObjectBody = 1 << 20

// errNotRecorded: the upstream created an object the store could not record.
var errNotRecorded = errors.New("proxy: the created object could not be recorded")

// modifyObjectResponse keeps the records in step with the upstream's answers:
// a created object is recorded (before the app learns its id), a deleted one,
// or one the upstream no longer has (404), forgotten, and a batch's output and
// error files are recorded for the batch's account.
func (p *Proxy) modifyObjectResponse(res *http.Response) error {
	for _, name := range dropResponseHeaders {
		res.Header.Del(name)
	}
	c := objectCallFrom(res.Request.Context())
	if c == nil {
		return nil
	}
	if c.tooLarge {
		return errBodyTooLarge
	}
	ctx := context.WithoutCancel(c.r.Context())
	ok := res.StatusCode >= 200 && res.StatusCode <= 299
	switch {
	case c.id != "" && res.StatusCode == http.StatusNotFound:
		p.forget(ctx, c.key.Account, c.route.kind, c.id, "the upstream no longer has it")
	case ok && c.id != "" && c.route.method == http.MethodDelete:
		p.forget(ctx, c.key.Account, c.route.kind, c.id, "deleted")
	case ok && c.created != nil:
		body, err := readObjectBody(res)
		if err != nil {
			return err
		}
		if err := c.created(ctx, body); err != nil {
			return err
		}
	case ok && c.route.kind == billing.ObjectBatch && c.id != "":
		body, err := readObjectBody(res)
		if err != nil {
			return err
		}
		p.adoptBatchFiles(ctx, c.key.Account, body)
	}
	return nil
}

// readObjectBody reads a 2xx object answer whole (within maxObjectBody) and
// puts it back for the app.
func readObjectBody(res *http.Response) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(res.Body, maxObjectBody+1))
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(body) > maxObjectBody {
		return nil, fmt.Errorf("proxy: an object answer larger than %d bytes", maxObjectBody)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return body, nil
}

var errBodyTooLarge = errors.New("proxy: request body over the limit")

// objectUpstreamError answers a failed object exchange: 413 for a body over
// the limit, 503 for an object created but not recorded, 504/502 otherwise.
func (p *Proxy) objectUpstreamError(w http.ResponseWriter, r *http.Request, err error) {
	c := objectCallFrom(r.Context())
	var ne net.Error
	switch {
	case c != nil && c.tooLarge, errors.Is(err, errBodyTooLarge):
		writeError(w, errTooLarge(p.opts.MaxBodyBytes))
	case c != nil && c.refused != nil:
		writeError(w, c.refused)
	case errors.Is(err, errNotRecorded):
		writeError(w, errStoreUnavailable())
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		writeError(w, errUpstreamTimeout())
	case errors.Is(err, context.Canceled):
	default:
		writeError(w, errUpstreamUnreachable())
	}
}

// forget drops a record, logging a failure (the record then lingers: a list
// asks the upstream, which answers 404 again, and forgets it then).
func (p *Proxy) forget(ctx context.Context, account string, kind billing.ObjectKind, id, why string) {
	if err := p.opts.Objects.DeleteObject(ctx, account, kind, id); err != nil {
		p.log.Warn("could not forget a stored object", zap.String("account", account), zap.String("kind", string(kind)),
			zap.String("object", id), zap.String("why", why), zapErr(err))
	}
}

// record records an object the caller created; false (logged) when the store
// failed.
func (p *Proxy) record(ctx context.Context, account string, kind billing.ObjectKind, id string) error {
	err := p.opts.Objects.PutObject(ctx, account, kind, id, p.opts.Now())
	if err != nil {
		p.log.Error("could not record a stored object: its owner gets 404 for it", zap.String("account", account),
			zap.String("kind", string(kind)), zap.String("object", id), zapErr(err))
	}
	return err
}

// objectID reads the "id" of an object's JSON, checked for a key.
func objectID(body []byte) (string, bool) {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &v) != nil || billing.ValidObjectID(v.ID) != nil {
		return "", false
	}
	return v.ID, true
}

// upstreamPath is where the upstream serves one object of kind.
func upstreamPath(kind billing.ObjectKind, id string) string {
	switch kind {
	case billing.ObjectFile:
		return "/files/" + id
	case billing.ObjectBatch:
		return "/batches/" + id
	case billing.ObjectResponse:
		return "/responses/" + id
	}
	return "/chat/completions/" + id
}

// upstreamCall sends one request of the proxy's own to the upstream (path
// below the base URL, "/files/x"), with the operator's key.
func (p *Proxy) upstreamCall(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	u := *p.opts.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath, u.RawQuery = "", ""
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if p.opts.UpstreamKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.opts.UpstreamKey)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return p.opts.Transport.RoundTrip(req)
}

// upstreamJSON GETs an object's JSON (within maxObjectBody).
func (p *Proxy) upstreamJSON(ctx context.Context, path string) (status int, body []byte, err error) {
	res, err := p.upstreamCall(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err = io.ReadAll(io.LimitReader(res.Body, maxObjectBody+1))
	if err == nil && len(body) > maxObjectBody {
		err = fmt.Errorf("proxy: upstream answer to %s larger than %d bytes", path, maxObjectBody)
	}
	return res.StatusCode, body, err
}

// The list routes: how many objects a page has by default, and at most (each
// is one upstream request), how many of the caller's records one list reads at
// most while filters skip objects, and how many objects are fetched at once.
const (
	maxListPage      = 100
	maxListScanned   = 1000
	listFetchWorkers = 8
)

// listObjects answers a list route from the caller's records: each object
// fetched from the upstream, in the order asked, filtered as asked (files by
// purpose; chat completions by model and metadata), in OpenAI's cursor list.
func (p *Proxy) listObjects(c *objectCall) {
	q := c.r.URL.Query()
	kind := c.route.kind
	limit, newest := 20, true
	switch kind {
	case billing.ObjectFile:
		limit = maxListPage // OpenAI's default is 10000: pages here are at most 100
	case billing.ObjectChatCompletion:
		newest = false // OpenAI's default order: oldest first
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(c.w, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "limit", code: "invalid_value",
				message: "Invalid 'limit': expected a positive integer, got " + strconvQuote(v) + "."})
			return
		}
		limit = min(n, maxListPage)
	}
	if kind != billing.ObjectBatch { // batches are always newest first
		switch q.Get("order") {
		case "":
		case "asc":
			newest = false
		case "desc":
			newest = true
		default:
			writeError(c.w, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "order", code: "invalid_value",
				message: "Invalid 'order': expected 'asc' or 'desc'."})
			return
		}
	}
	keep := listFilter(kind, q)
	ctx := c.r.Context()
	var data []json.RawMessage
	var ids []string
	after, more, scanned := q.Get("after"), false, 0
	for len(data) < limit && scanned < maxListScanned {
		page, err := p.opts.Objects.ListObjects(ctx, billing.ObjectQuery{Account: c.key.Account, Kind: kind, After: after, Limit: limit - len(data), Newest: newest})
		if err != nil {
			writeError(c.w, p.storeError(err, "object list failed"))
			return
		}
		scanned += len(page.IDs)
		objs, aerr := p.fetchObjects(ctx, c.key.Account, kind, page.IDs)
		if aerr != nil {
			writeError(c.w, aerr)
			return
		}
		for i, obj := range objs {
			if obj != nil && keep(obj) {
				data, ids = append(data, obj), append(ids, page.IDs[i])
			}
		}
		more = page.HasMore
		if !more || len(page.IDs) == 0 {
			break
		}
		after = page.IDs[len(page.IDs)-1]
	}
	list := struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		FirstID *string           `json:"first_id"`
		LastID  *string           `json:"last_id"`
		HasMore bool              `json:"has_more"`
	}{Object: "list", Data: data, HasMore: more}
	if list.Data == nil {
		list.Data = []json.RawMessage{}
	}
	if len(ids) > 0 {
		list.FirstID, list.LastID = &ids[0], &ids[len(ids)-1]
	}
	writeJSON(c.w, http.StatusOK, list)
}

// listFilter is what a list's query asks of each object.
func listFilter(kind billing.ObjectKind, q map[string][]string) func(json.RawMessage) bool {
	first := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	purpose, model := first("purpose"), first("model")
	metadata := map[string]string{}
	for k, v := range q {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") && len(v) > 0 {
			metadata[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	if kind == billing.ObjectFile && purpose == "" || kind == billing.ObjectChatCompletion && model == "" && len(metadata) == 0 ||
		kind != billing.ObjectFile && kind != billing.ObjectChatCompletion {
		return func(json.RawMessage) bool { return true }
	}
	return func(obj json.RawMessage) bool {
		var v struct {
			Purpose  string            `json:"purpose"`
			Model    string            `json:"model"`
			Metadata map[string]string `json:"metadata"`
		}
		if json.Unmarshal(obj, &v) != nil {
			return false
		}
		if kind == billing.ObjectFile {
			return v.Purpose == purpose
		}
		if model != "" && v.Model != model {
			return false
		}
		for k, want := range metadata {
			if v.Metadata[k] != want {
				return false
			}
		}
		return true
	}
}

// fetchObjects GETs each object from the upstream, a few at once, in order: nil
// for one the upstream no longer has (its record is forgotten). Any other
// failure is the list's answer: the upstream's own error, 502 or 504.
func (p *Proxy) fetchObjects(ctx context.Context, account string, kind billing.ObjectKind, ids []string) ([]json.RawMessage, *apiError) {
	out := make([]json.RawMessage, len(ids))
	errs := make([]*apiError, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, listFetchWorkers)
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			status, body, err := p.upstreamJSON(ctx, upstreamPath(kind, id))
			switch {
			case err != nil:
				errs[i] = p.upstreamFailure(err)
			case status == http.StatusNotFound:
				p.forget(context.WithoutCancel(ctx), account, kind, id, "the upstream no longer has it")
			case status < 200 || status > 299:
				errs[i] = upstreamRefusal(status, body)
			case !json.Valid(body):
				errs[i] = errUpstreamUnreachable()
			default:
				out[i] = body
				if kind == billing.ObjectBatch {
					p.adoptBatchFiles(context.WithoutCancel(ctx), account, body)
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	return out, nil
}

// upstreamFailure maps an error of the proxy's own upstream call to 504 or 502.
func (p *Proxy) upstreamFailure(err error) *apiError {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errUpstreamTimeout()
	}
	return errUpstreamUnreachable()
}

// upstreamRefusal passes an upstream error answer on: its status and, when it
// is OpenAI's error shape, its message, type, param and code.
func upstreamRefusal(status int, body []byte) *apiError {
	var v struct {
		Error *struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	e := &apiError{status: status, typ: typeServer, message: "The upstream API answered " + strconv.Itoa(status) + "."}
	if status < 500 {
		e.typ = typeInvalidRequest
	}
	if json.Unmarshal(body, &v) == nil && v.Error != nil {
		e.message, e.typ = v.Error.Message, v.Error.Type
		if v.Error.Param != nil {
			e.param = *v.Error.Param
		}
		if v.Error.Code != nil {
			e.code = *v.Error.Code
		}
	}
	return e
}
