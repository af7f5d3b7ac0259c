package mockupstream

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The stored objects: files, batches, stored responses and stored chat
// completions, kept in memory for the life of the Server, each kind in creation
// order. Their routes answer in OpenAI's shapes, cursor lists included
// ({"object":"list","data","first_id","last_id","has_more"}).

// maxStored bounds each kind of stored object (the oldest is forgotten first), so
// a long load run that stores every response does not grow without bound.
const maxStored = 10000

// objectStore holds the stored objects. Its zero value is ready to use.
type objectStore struct {
	mu        sync.Mutex
	files     storedList[*file]
	batches   storedList[*batch]
	responses storedList[*storedResponse]
	chats     storedList[*storedChat]
}

// storedList is one kind of object by id, with the ids in creation order.
type storedList[T any] struct {
	byID  map[string]T
	order []string
}

func (l *storedList[T]) put(id string, v T) {
	if l.byID == nil {
		l.byID = map[string]T{}
	}
	if _, ok := l.byID[id]; !ok {
		l.order = append(l.order, id)
	}
	l.byID[id] = v
	if len(l.order) > maxStored {
		delete(l.byID, l.order[0])
		l.order = l.order[1:]
	}
}

func (l *storedList[T]) get(id string) (T, bool) {
	v, ok := l.byID[id]
	return v, ok
}

func (l *storedList[T]) remove(id string) bool {
	if _, ok := l.byID[id]; !ok {
		return false
	}
	delete(l.byID, id)
	l.order = slices.DeleteFunc(l.order, func(s string) bool { return s == id })
	return true
}

// page is one page of a cursor list: the ids after `after` (exclusive) in the
// order asked ("desc" newest first, else oldest first), at most limit of those
// keep accepts.
func (l *storedList[T]) page(after string, limit int, desc bool, keep func(T) bool) (out []T, hasMore bool) {
	ids := slices.Clone(l.order)
	if desc {
		slices.Reverse(ids)
	}
	if after != "" {
		i := slices.Index(ids, after)
		if i < 0 {
			return nil, false
		}
		ids = ids[i+1:]
	}
	for _, id := range ids {
		v := l.byID[id]
		if keep != nil && !keep(v) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, v)
	}
	return out, false
}

// listPage is OpenAI's cursor list object.
type listPage struct {
	Object  string  `json:"object"`
	Data    any     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

func newListPage[T any](items []T, id func(T) string, hasMore bool) listPage {
	p := listPage{Object: "list", Data: items, HasMore: hasMore}
	if items == nil {
		p.Data = []T{}
	}
	if len(items) > 0 {
		first, last := id(items[0]), id(items[len(items)-1])
		p.FirstID, p.LastID = &first, &last
	}
	return p
}

// listParams are the query parameters every list reads.
type listParams struct {
	after string
	limit int
	desc  bool
}

// parseList reads after, limit (default def, 1 to max) and order (default
// defOrder) from q, or returns OpenAI's 400.
func parseList(q url.Values, def, max int, defOrder string) (listParams, *apiError) {
	p := listParams{after: q.Get("after"), limit: def, desc: defOrder == "desc"}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			return p, &apiError{Message: "Invalid 'limit': expected an integer from 1 to " + strconv.Itoa(max) + ".",
				Type: "invalid_request_error", Param: "limit", Code: "invalid_value"}
		}
		p.limit = n
	}
	switch q.Get("order") {
	case "":
	case "asc":
		p.desc = false
	case "desc":
		p.desc = true
	default:
		return p, &apiError{Message: "Invalid 'order': expected 'asc' or 'desc'.", Type: "invalid_request_error", Param: "order", Code: "invalid_value"}
	}
	return p, nil
}

// notFound is OpenAI's 404 for an object id nobody has.
func notFound(message string) apiError {
	return apiError{Message: message, Type: "invalid_request_error", Param: "id"}
}

// objectRoute picks the handler of a stored-object route (path without its
// "/v1/" prefix), or nil.
func (s *Server) objectRoute(method, path string) func(*exchange) error {
	parts := strings.Split(path, "/")
	for _, p := range parts {
		if p == "" {
			return nil
		}
	}
	switch parts[0] {
	case "files":
		return s.fileRoute(method, parts[1:])
	case "batches":
		return s.batchRoute(method, parts[1:])
	case "responses":
		return s.storedResponseRoute(method, parts[1:])
	case "chat":
		if len(parts) >= 2 && parts[1] == "completions" {
			return s.storedChatRoute(method, parts[2:])
		}
	}
	return nil
}

// deleted is the answer to a DELETE.
type deleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// rawObject is a stored JSON object whose members are edited in place.
type rawObject map[string]json.RawMessage

func (o rawObject) set(key string, v any) {
	data, _ := json.Marshal(v) // the values set here always marshal
	o[key] = data
}

func (o rawObject) str(key string) string {
	var s string
	_ = json.Unmarshal(o[key], &s)
	return s
}

// answerRaw writes a stored object's JSON.
func (x *exchange) answerRaw(data []byte) error {
	return x.answer(json.RawMessage(data))
}

// methodNotAllowed is nil: the route then answers OpenAI's 404.
func routeFor(method string, handlers map[string]func(*exchange) error) func(*exchange) error {
	if h, ok := handlers[method]; ok {
		return h
	}
	return nil
}
