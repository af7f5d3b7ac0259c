package mockupstream

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"
)

// batch is OpenAI's Batch object, and how the mock will end it.
//
// A batch is created "validating" and is "in_progress" from then on, until it
// ends: when FinishBatches is called, or, with Server.BatchDelay set, at the
// first look at it (retrieve, list, cancel) once that long has passed since its
// creation. How it ends is planned at creation by the X-Mock-Batch header of the
// create request, or its metadata "mock_outcome":
//
//	completed      (the default) every line runs; the output file holds each answer with its usage
//	failed         nothing runs: status failed, errors set, no output file
//	expired:N      the first N lines run (output file), the rest do not (error file, batch_expired)
//	cancelled:N    as expired, but cancelled (batch_cancelled); a cancel request ends a
//	               batch planned otherwise as cancelled after 0 lines
//
// Each line that runs is answered by the mock's own handler for its url, as a
// request with the line's body would be (the server's fields apply, not the
// create request's X-Mock-* headers), so its usage is exact.
type batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"`
	Endpoint         string            `json:"endpoint"`
	Model            string            `json:"model,omitempty"`
	Errors           *batchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           string            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    batchCounts       `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`

	plan    batchPlan
	created time.Time
	lines   [][]byte
}

type batchErrors struct {
	Object string       `json:"object"`
	Data   []batchError `json:"data"`
}

type batchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

type batchCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// batchPlan is how a batch will end: its final status and how many lines run
// first (-1: all).
type batchPlan struct {
	status string
	ran    int
}

// BatchEndpoints are the endpoints a batch may target, as OpenAI lists them.
var batchEndpoints = map[string]bool{
	"/v1/responses": true, "/v1/chat/completions": true, "/v1/embeddings": true, "/v1/completions": true, "/v1/moderations": true,
}

func parseBatchPlan(v string) (batchPlan, error) {
	status, n, hasN := strings.Cut(v, ":")
	p := batchPlan{status: status, ran: -1}
	switch status {
	case "", "completed":
		p.status = "completed"
		if hasN {
			return p, fmt.Errorf("completed takes no count")
		}
		return p, nil
	case "failed":
		p.ran = 0
		if hasN {
			return p, fmt.Errorf("failed takes no count")
		}
		return p, nil
	case "expired", "cancelled":
		ran, err := strconv.Atoi(n)
		if err != nil || ran < 0 {
			return p, fmt.Errorf("%s wants a count of lines that ran, e.g. %s:2", status, status)
		}
		p.ran = ran
		return p, nil
	}
	return p, fmt.Errorf("want completed, failed, expired:N or cancelled:N")
}

func (s *Server) batchRoute(method string, rest []string) func(*exchange) error {
	switch len(rest) {
	case 0:
		return routeFor(method, map[string]func(*exchange) error{http.MethodPost: s.createBatch, http.MethodGet: s.listBatches})
	case 1:
		if method == http.MethodGet {
			return func(x *exchange) error { return s.getBatch(x, rest[0]) }
		}
	case 2:
		if rest[1] == "cancel" && method == http.MethodPost {
			return func(x *exchange) error { return s.cancelBatch(x, rest[0]) }
		}
	}
	return nil
}

func (s *Server) createBatch(x *exchange) error {
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	switch {
	case req.InputFileID == "":
		return x.writeError(http.StatusBadRequest, *missingParam("input_file_id"))
	case req.Endpoint == "":
		return x.writeError(http.StatusBadRequest, *missingParam("endpoint"))
	case !batchEndpoints[req.Endpoint]:
		return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid 'endpoint': " + req.Endpoint + " is not supported by the Batch API.",
			Type: "invalid_request_error", Param: "endpoint", Code: "invalid_value"})
	case req.CompletionWindow != "24h":
		return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid 'completion_window': only '24h' is supported.",
			Type: "invalid_request_error", Param: "completion_window", Code: "invalid_value"})
	}
	in, ok := s.file(req.InputFileID)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchFile(req.InputFileID))
	}
	if in.Purpose != "batch" {
		return x.writeError(http.StatusBadRequest, apiError{Message: "The input file must have purpose 'batch'.",
			Type: "invalid_request_error", Param: "input_file_id", Code: "invalid_value"})
	}
	planText := x.r.Header.Get("X-Mock-Batch")
	if planText == "" {
		planText = req.Metadata["mock_outcome"]
	}
	plan, err := parseBatchPlan(planText)
	if err != nil {
		return x.writeError(http.StatusBadRequest, apiError{Message: "invalid X-Mock-Batch (or metadata mock_outcome) " + strconv.Quote(planText) + ": " + err.Error(), Type: "invalid_request_error"})
	}
	now := time.Now()
	expires := now.Add(24 * time.Hour).Unix()
	b := &batch{
		ID: newID("batch_"), Object: "batch", Endpoint: req.Endpoint, InputFileID: req.InputFileID, CompletionWindow: req.CompletionWindow,
		Status: "validating", CreatedAt: now.Unix(), ExpiresAt: &expires, Metadata: req.Metadata,
		plan: plan, created: now,
	}
	sc := bufio.NewScanner(bytes.NewReader(in.content))
	sc.Buffer(nil, maxBodyBytes)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			b.lines = append(b.lines, bytes.Clone(line))
		}
	}
	b.RequestCounts.Total = len(b.lines)
	reply := *b // the create answer says validating; the batch runs from then on
	b.Status, b.InProgressAt = "in_progress", &reply.CreatedAt
	s.objects.mu.Lock()
	s.objects.batches.put(b.ID, b)
	s.objects.mu.Unlock()
	return x.answer(&reply)
}

// batchLine is one line of a batch input file.
type batchLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// FinishBatches ends every batch still running, as planned at its creation.
func (s *Server) FinishBatches() {
	s.objects.mu.Lock()
	var open []*batch
	for _, id := range s.objects.batches.order {
		if b := s.objects.batches.byID[id]; b.Status == "in_progress" || b.Status == "cancelling" {
			open = append(open, b)
		}
	}
	s.objects.mu.Unlock()
	for _, b := range open {
		s.finishBatch(b)
	}
}

// due ends b when Server.BatchDelay has passed since its creation.
func (s *Server) due(b *batch) {
	if s.BatchDelay > 0 && time.Since(b.created) >= s.BatchDelay {
		s.finishBatch(b)
	}
}

// finishBatch runs b's lines as planned and writes its output and error files.
// The lines run outside the lock; a batch already ended is left alone.
func (s *Server) finishBatch(b *batch) {
	s.objects.mu.Lock()
	if b.Status != "in_progress" && b.Status != "cancelling" {
		s.objects.mu.Unlock()
		return
	}
	plan, lines := b.plan, b.lines
	b.Status = "finalizing" // claimed: nobody else finishes it
	next := *b
	s.objects.mu.Unlock()

	now := time.Now().Unix()
	next.FinalizingAt = &now
	if plan.status == "failed" {
		line := 1
		next.Status, next.FailedAt = "failed", &now
		next.Errors = &batchErrors{Object: "list", Data: []batchError{{Code: "invalid_request", Line: &line,
			Message: "The batch failed validation (X-Mock-Batch: failed)."}}}
		next.FinalizingAt = nil
		s.storeBatch(b, next)
		return
	}
	ran := len(lines)
	if plan.ran >= 0 && plan.ran < ran {
		ran = plan.ran
	}
	var out, errs bytes.Buffer
	for i, raw := range lines {
		var line batchLine
		if err := json.Unmarshal(raw, &line); err != nil {
			next.RequestCounts.Failed++
			writeErrorLine(&errs, "", "invalid_json_line", "This line is not valid JSON.")
			continue
		}
		if i >= ran {
			next.RequestCounts.Failed++
			code, msg := "batch_expired", "This request could not be executed before the completion window expired."
			if plan.status == "cancelled" {
				code, msg = "batch_cancelled", "This request was not executed because the batch was cancelled."
			}
			writeErrorLine(&errs, line.CustomID, code, msg)
			continue
		}
		status, body := s.runBatchLine(b.Endpoint, line)
		if next.Model == "" {
			var m struct {
				Model string `json:"model"`
			}
			_ = json.Unmarshal(body, &m)
			next.Model = m.Model
		}
		entry := map[string]any{"id": newID("batch_req_"), "custom_id": line.CustomID,
			"response": map[string]any{"status_code": status, "request_id": newID("req_"), "body": json.RawMessage(body)}, "error": nil}
		data, _ := json.Marshal(entry) // the body is the handler's own JSON
		if status >= 200 && status < 300 {
			next.RequestCounts.Completed++
			out.Write(data)
			out.WriteByte('\n')
		} else {
			next.RequestCounts.Failed++
			errs.Write(data)
			errs.WriteByte('\n')
		}
	}
	if out.Len() > 0 {
		f := s.putFile("batch_"+b.ID+"_output.jsonl", "batch_output", out.Bytes(), 0)
		next.OutputFileID = &f.ID
	}
	if errs.Len() > 0 {
		f := s.putFile("batch_"+b.ID+"_error.jsonl", "batch_output", errs.Bytes(), 0)
		next.ErrorFileID = &f.ID
	}
	switch plan.status {
	case "expired":
		next.Status, next.ExpiredAt = "expired", &now
	case "cancelled":
		next.Status, next.CancelledAt = "cancelled", &now
	default:
		next.Status, next.CompletedAt = "completed", &now
	}
	s.storeBatch(b, next)
}

func writeErrorLine(w *bytes.Buffer, customID, code, message string) {
	data, _ := json.Marshal(map[string]any{"id": newID("batch_req_"), "custom_id": customID, "response": nil,
		"error": map[string]string{"code": code, "message": message}})
	w.Write(data)
	w.WriteByte('\n')
}

// storeBatch replaces b's public fields with next's, under the lock.
func (s *Server) storeBatch(b *batch, next batch) {
	s.objects.mu.Lock()
	*b = next
	s.objects.mu.Unlock()
}

// runBatchLine answers one line with the mock's own handler for the batch's
// endpoint, and returns the status and body it wrote.
func (s *Server) runBatchLine(endpoint string, line batchLine) (int, []byte) {
	if line.URL != endpoint || line.Method != http.MethodPost {
		return http.StatusBadRequest, mustJSON(apiError{Message: "The line's url must be the batch's endpoint and its method POST.", Type: "invalid_request_error", Param: "url"})
	}
	body := []byte(line.Body)
	r := httptest.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	handle := s.route(r)
	if handle == nil {
		return http.StatusNotFound, mustJSON(apiError{Message: "Invalid URL (POST " + endpoint + ")", Type: "invalid_request_error", Code: "unknown_url"})
	}
	var stream struct {
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(body, &stream) == nil && stream.Stream {
		return http.StatusBadRequest, mustJSON(apiError{Message: "Streaming is not supported in batches.", Type: "invalid_request_error", Param: "stream"})
	}
	b := Behavior{CachedTokens: s.CachedTokens, ReasoningTokens: s.ReasoningTokens}
	w := httptest.NewRecorder()
	x := &exchange{w: w, r: r, body: body, rec: &record{}, b: b}
	if err := handle(x); err != nil {
		return http.StatusInternalServerError, mustJSON(apiError{Message: err.Error(), Type: "server_error"})
	}
	return w.Code, bytes.TrimSpace(w.Body.Bytes())
}

func mustJSON(v any) []byte {
	data, _ := json.Marshal(v) // apiError always marshals
	return data
}

func noSuchBatch(id string) apiError { return notFound("No batch found with id '" + id + "'.") }

// lookBatch returns a copy of batch id, ended first when it is due.
func (s *Server) lookBatch(id string) (batch, bool) {
	s.objects.mu.Lock()
	b, ok := s.objects.batches.get(id)
	s.objects.mu.Unlock()
	if !ok {
		return batch{}, false
	}
	s.due(b)
	s.objects.mu.Lock()
	defer s.objects.mu.Unlock()
	return *b, true
}

func (s *Server) getBatch(x *exchange, id string) error {
	b, ok := s.lookBatch(id)
	if !ok {
		return x.writeError(http.StatusNotFound, noSuchBatch(id))
	}
	return x.answer(&b)
}

// cancelBatch asks a running batch to stop: it answers "cancelling", and the
// batch ends cancelled (after the lines its plan lets run, 0 unless planned
// cancelled:N) when it finishes.
func (s *Server) cancelBatch(x *exchange, id string) error {
	s.objects.mu.Lock()
	b, ok := s.objects.batches.get(id)
	if !ok {
		s.objects.mu.Unlock()
		return x.writeError(http.StatusNotFound, noSuchBatch(id))
	}
	if b.Status != "in_progress" && b.Status != "validating" && b.Status != "cancelling" {
		status := b.Status
		s.objects.mu.Unlock()
		return x.writeError(http.StatusConflict, apiError{Message: "Cannot cancel a batch with status '" + status + "'.", Type: "invalid_request_error"})
	}
	if b.plan.status != "cancelled" {
		b.plan = batchPlan{status: "cancelled", ran: 0}
	}
	now := time.Now().Unix()
	b.Status, b.CancellingAt = "cancelling", &now
	reply := *b
	s.objects.mu.Unlock()
	return x.answer(&reply)
}

// listBatches lists batches newest first (limit 1 to 100, default 20).
func (s *Server) listBatches(x *exchange) error {
	p, e := parseList(x.r.URL.Query(), 20, 100, "desc")
	if e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	p.desc = true // batches list newest first, whatever order says
	s.objects.mu.Lock()
	items, more := s.objects.batches.page(p.after, p.limit, true, nil)
	s.objects.mu.Unlock()
	out := make([]batch, len(items))
	for i, b := range items {
		s.due(b)
		s.objects.mu.Lock()
		out[i] = *b
		s.objects.mu.Unlock()
	}
	return x.answer(newListPage(out, func(b batch) string { return b.ID }, more))
}
