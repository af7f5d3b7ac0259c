package mockupstream

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Stored responses (a Responses request unless it says "store": false, as
// OpenAI's default is) and stored chat completions (a non-streamed chat request
// with "store": true), kept as the JSON answered, with their input.

type storedResponse struct {
	id    string
	body  []byte
	items []inputItem
	// queued is a background response's answer while it runs (nil once it
	// ended): body, its final JSON, is shown from then on.
	queued  []byte
	created time.Time
}

// inputItem is an input item of a stored response, as input_items lists it.
type inputItem struct {
	ID      string       `json:"id"`
	Type    string       `json:"type"`
	Role    string       `json:"role"`
	Status  string       `json:"status"`
	Content []inputTexts `json:"content"`
}

type inputTexts struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type storedChat struct {
	id       string
	model    string
	created  int64
	object   rawObject // the completion as answered, with its metadata
	metadata map[string]string
	messages []chatMessage
}

// chatMessage is a message of a stored chat completion's request.
type chatMessage struct {
	ID           string  `json:"id"`
	Role         string  `json:"role"`
	Content      string  `json:"content"`
	Name         *string `json:"name"`
	ContentParts *string `json:"content_parts"`
}

// keepResponse stores a finished response (its JSON now) and its input.
func (s *Server) keepResponse(resp *response, input []message) {
	data, _ := json.Marshal(resp) // a response always marshals
	r := &storedResponse{id: resp.ID, body: data}
	for _, m := range input {
		if m.Role == "" {
			continue
		}
		item := inputItem{ID: newID("msg_"), Type: "message", Role: m.Role, Status: "completed", Content: []inputTexts{}}
		for _, t := range m.Content {
			item.Content = append(item.Content, inputTexts{Type: "input_text", Text: t})
		}
		r.items = append(r.items, item)
	}
	s.objects.mu.Lock()
	s.objects.responses.put(r.id, r)
	s.objects.mu.Unlock()
}

// keepChat stores a chat completion answered with store: true.
func (s *Server) keepChat(completion any, id, model string, created int64, metadata map[string]string, msgs []message) {
	data, _ := json.Marshal(completion) // the completion struct always marshals
	var obj rawObject
	_ = json.Unmarshal(data, &obj)
	if metadata == nil {
		metadata = map[string]string{}
	}
	obj.set("metadata", metadata)
	c := &storedChat{id: id, model: model, created: created, object: obj, metadata: metadata}
	for i, m := range msgs {
		c.messages = append(c.messages, chatMessage{ID: id + "-" + strconv.Itoa(i), Role: m.Role, Content: strings.Join(m.Content, "")})
	}
	s.objects.mu.Lock()
	s.objects.chats.put(id, c)
	s.objects.mu.Unlock()
}

func (s *Server) storedResponseRoute(method string, rest []string) func(*exchange) error {
	switch len(rest) {
	case 1:
		id := rest[0]
		return routeFor(method, map[string]func(*exchange) error{
			http.MethodGet:    func(x *exchange) error { return s.getResponse(x, id) },
			http.MethodDelete: func(x *exchange) error { return s.deleteResponse(x, id) },
		})
	case 2:
		id := rest[0]
		switch {
		case rest[1] == "input_items" && method == http.MethodGet:
			return func(x *exchange) error { return s.responseInputItems(x, id) }
		case rest[1] == "cancel" && method == http.MethodPost:
			return func(x *exchange) error { return s.cancelResponse(x, id) }
		}
	}
	return nil
}

func noSuchResponse(id string) apiError {
	return apiError{Message: "Response with id '" + id + "' not found.", Type: "invalid_request_error"}
}

func (s *Server) response(id string) (*storedResponse, bool) {
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	return s.objects.responses.get(id)
}

func (s *Server) getResponse(x *exchange, id string) error {
	s.objects.mu.Lock()
	r, ok := s.objects.responses.get(id)
	var body []byte
	if ok {
		if r.queued != nil && s.BackgroundDelay > 0 && time.Since(r.created) >= s.BackgroundDelay {
			r.queued = nil
		}
		body = r.body
		if r.queued != nil {
			body = r.queued
		}
	}
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchResponse(id))
	}
	return x.answerRaw(body)
}

// background marks the stored response id (kept by finish, final) as a
// background one still queued, answering queued until it ends.
func (s *Server) background(id string, queued []byte) {
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	if r, ok := s.objects.responses.get(id); ok {
		r.queued, r.created = queued, time.Now()
	}
}

// FinishBackground ends the background responses still queued: each shows its
// final JSON (completed, or incomplete at its output cap) from now on. With
// status "failed", each fails instead, without usage.
func (s *Server) FinishBackground(status string) {
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	for _, id := range s.objects.responses.order {
		r := s.objects.responses.byID[id]
		if r.queued == nil {
			continue
		}
		if status == "failed" {
			var o rawObject
			_ = json.Unmarshal(r.queued, &o)
			o.set("status", "failed")
			o.set("error", map[string]string{"code": "server_error", "message": "The model failed to generate a response."})
			r.body, _ = json.Marshal(o)
		}
		r.queued = nil
	}
}

func (s *Server) deleteResponse(x *exchange, id string) error {
	s.objects.mu.Lock()
	ok := s.objects.responses.remove(id)
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchResponse(id))
	}
	return x.answer(deleted{ID: id, Object: "response", Deleted: true})
}

func (s *Server) responseInputItems(x *exchange, id string) error {
	r, ok := s.response(id)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchResponse(id))
	}
	p, e := parseList(x.r.URL.Query(), 20, 100, "desc")
	if e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	var l storedList[inputItem]
	for _, it := range r.items {
		l.put(it.ID, it)
	}
	items, more := l.page(p.after, p.limit, p.desc, nil)
	return x.answer(newListPage(items, func(it inputItem) string { return it.ID }, more))
}

// cancelResponse cancels a background response still queued: it ends
// cancelled, having generated nothing (its usage counts the prompt only).
// Other responses cannot be cancelled.
func (s *Server) cancelResponse(x *exchange, id string) error {
	s.objects.mu.Lock()
	r, ok := s.objects.responses.get(id)
	var body []byte
	var background bool
	if ok && r.queued != nil {
		var final, o rawObject
		_ = json.Unmarshal(r.body, &final)
		_ = json.Unmarshal(r.queued, &o)
		var u responseUsage
		_ = json.Unmarshal(final["usage"], &u)
		if final["usage"] != nil && string(final["usage"]) != "null" {
			o.set("usage", responseUsage{InputTokens: u.InputTokens, InputTokensDetails: u.InputTokensDetails, TotalTokens: u.InputTokens})
		}
		o.set("status", "cancelled")
		r.body, _ = json.Marshal(o)
		r.queued = nil
	}
	if ok {
		body = r.body
		var o rawObject
		_ = json.Unmarshal(r.body, &o)
		background = string(o["background"]) == "true"
	}
	s.objects.mu.Unlock()
	switch {
	case !ok:
		return x.writeError(http.StatusNotFound, noSuchResponse(id))
	case !background:
		return x.writeError(http.StatusBadRequest, apiError{Message: "Only responses created with background=true can be cancelled.", Type: "invalid_request_error"})
	}
	return x.answerRaw(body)
}

func (s *Server) storedChatRoute(method string, rest []string) func(*exchange) error {
	switch len(rest) {
	case 0:
		if method == http.MethodGet {
			return s.listChats
		}
	case 1:
		id := rest[0]
		return routeFor(method, map[string]func(*exchange) error{
			http.MethodGet:    func(x *exchange) error { return s.getChat(x, id) },
			http.MethodPost:   func(x *exchange) error { return s.updateChat(x, id) },
			http.MethodDelete: func(x *exchange) error { return s.deleteChat(x, id) },
		})
	case 2:
		if rest[1] == "messages" && method == http.MethodGet {
			return func(x *exchange) error { return s.chatMessages(x, rest[0]) }
		}
	}
	return nil
}

func noSuchChat(id string) apiError {
	return notFound("Chat completion with id '" + id + "' not found.")
}

// chatJSON is a stored completion's JSON, taken under the lock.
func (s *Server) chatJSON(id string) ([]byte, bool) {
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	c, ok := s.objects.chats.get(id)
	if !ok {
		return nil, false
	}
	data, _ := json.Marshal(c.object) // raw members always marshal
	return data, true
}

func (s *Server) getChat(x *exchange, id string) error {
	data, ok := s.chatJSON(id)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchChat(id))
	}
	return x.answerRaw(data)
}

// updateChat replaces a stored completion's metadata.
func (s *Server) updateChat(x *exchange, id string) error {
	var req struct {
		Metadata map[string]string `json:"metadata"`
	}
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if req.Metadata == nil {
		return x.writeError(http.StatusBadRequest, *missingParam("metadata"))
	}
	s.objects.mu.Lock()
	c, ok := s.objects.chats.get(id)
	if ok {
		c.metadata = req.Metadata
		c.object.set("metadata", req.Metadata)
	}
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchChat(id))
	}
	return s.getChat(x, id)
}

func (s *Server) deleteChat(x *exchange, id string) error {
	s.objects.mu.Lock()
	ok := s.objects.chats.remove(id)
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchChat(id))
	}
	return x.answer(deleted{ID: id, Object: "chat.completion.deleted", Deleted: true})
}

// listChats lists stored completions, oldest first by default (OpenAI's), of one
// model and with the metadata[key]=value pairs asked, when asked.
func (s *Server) listChats(x *exchange) error {
	q := x.r.URL.Query()
	p, e := parseList(q, 20, 100, "asc")
	if e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	model := q.Get("model")
	want := map[string]string{}
	for k, v := range q {
		if key, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(key, "]") && len(v) > 0 {
			want[strings.TrimSuffix(key, "]")] = v[0]
		}
	}
	s.objects.mu.Lock()
	items, more := s.objects.chats.page(p.after, p.limit, p.desc, func(c *storedChat) bool {
		if model != "" && c.model != model {
			return false
		}
		for k, v := range want {
			if c.metadata[k] != v {
				return false
			}
		}
		return true
	})
	data := make([]json.RawMessage, len(items))
	for i, c := range items {
		data[i], _ = json.Marshal(c.object)
	}
	s.objects.mu.Unlock()
	page := listPage{Object: "list", Data: data, HasMore: more}
	if len(items) > 0 {
		first, last := items[0].id, items[len(items)-1].id
		page.FirstID, page.LastID = &first, &last
	}
	return x.answer(page)
}

func (s *Server) chatMessages(x *exchange, id string) error {
	p, e := parseList(x.r.URL.Query(), 20, 100, "asc")
	if e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	s.objects.mu.Lock()
	c, ok := s.objects.chats.get(id)
	var l storedList[chatMessage]
	if ok {
		for _, m := range c.messages {
			l.put(m.ID, m)
		}
	}
	s.objects.mu.Unlock()
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchChat(id))
	}
	items, more := l.page(p.after, p.limit, p.desc, nil)
	return x.answer(newListPage(items, func(m chatMessage) string { return m.ID }, more))
}
