package mockupstream_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/creditgate/creditgate/internal/mockupstream"
)

// The File and Batch objects as OpenAI documents them; decoded strictly.
type fileObject struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"`
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"`
	StatusDetails *string `json:"status_details"`
}

type batchObject struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Endpoint string `json:"endpoint"`
	Model    string `json:"model"`
	Errors   *struct {
		Object string `json:"object"`
		Data   []struct {
			Code    string  `json:"code"`
			Message string  `json:"message"`
			Param   *string `json:"param"`
			Line    *int    `json:"line"`
		} `json:"data"`
	} `json:"errors"`
	InputFileID      string  `json:"input_file_id"`
	CompletionWindow string  `json:"completion_window"`
	Status           string  `json:"status"`
	OutputFileID     *string `json:"output_file_id"`
	ErrorFileID      *string `json:"error_file_id"`
	CreatedAt        int64   `json:"created_at"`
	InProgressAt     *int64  `json:"in_progress_at"`
	ExpiresAt        *int64  `json:"expires_at"`
	FinalizingAt     *int64  `json:"finalizing_at"`
	CompletedAt      *int64  `json:"completed_at"`
	FailedAt         *int64  `json:"failed_at"`
	ExpiredAt        *int64  `json:"expired_at"`
	CancellingAt     *int64  `json:"cancelling_at"`
	CancelledAt      *int64  `json:"cancelled_at"`
	RequestCounts    struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
	Metadata map[string]string `json:"metadata"`
}

type listObject struct {
	Object  string            `json:"object"`
	Data    []json.RawMessage `json:"data"`
	FirstID *string           `json:"first_id"`
	LastID  *string           `json:"last_id"`
	HasMore bool              `json:"has_more"`
}

type outputLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url string, body io.Reader, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// upload posts a multipart file upload.
func upload(t testing.TB, base, name, purpose string, content []byte) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(content)
	mw.WriteField("purpose", purpose)
	mw.Close()
	return do(t, http.MethodPost, base+"/v1/files", &buf, "Content-Type: "+mw.FormDataContentType())
}

func TestFiles(t *testing.T) {
	_, ts := start(t, nil)
	status, body := upload(t, ts.URL, "a.jsonl", "batch", []byte("{}\n"))
	if status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	var f fileObject
	strict(t, body, &f)
	if !strings.HasPrefix(f.ID, "file-") || f.Object != "file" || f.Bytes != 3 || f.Filename != "a.jsonl" || f.Purpose != "batch" || f.Status != "processed" {
		t.Fatalf("file %s", body)
	}
	_, body2 := upload(t, ts.URL, "b.txt", "user_data", []byte("hello"))
	var g fileObject
	strict(t, body2, &g)

	for _, tc := range []struct {
		name, method, path string
		status             int
		want               string
	}{
		{"get", "GET", "/v1/files/" + f.ID, 200, `"id":"` + f.ID + `"`},
		{"content", "GET", "/v1/files/" + f.ID + "/content", 200, "{}\n"},
		{"unknown", "GET", "/v1/files/file-nope", 404, "No such File object: file-nope"},
		{"unknown content", "GET", "/v1/files/file-nope/content", 404, "No such File object"},
		{"list newest first", "GET", "/v1/files", 200, `"first_id":"` + g.ID + `"`},
		{"list by purpose", "GET", "/v1/files?purpose=batch", 200, `"last_id":"` + f.ID + `"`},
		{"list limit", "GET", "/v1/files?limit=1", 200, `"has_more":true`},
		{"list after", "GET", "/v1/files?after=" + g.ID, 200, `"first_id":"` + f.ID + `"`},
		{"bad limit", "GET", "/v1/files?limit=0", 400, "Invalid 'limit'"},
		{"delete", "DELETE", "/v1/files/" + g.ID, 200, `{"id":"` + g.ID + `","object":"file","deleted":true}`},
		{"deleted", "GET", "/v1/files/" + g.ID, 404, "No such File object"},
		{"delete again", "DELETE", "/v1/files/" + g.ID, 404, "No such File object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, tc.method, ts.URL+tc.path, nil)
			if status != tc.status || !strings.Contains(string(body), tc.want) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tc.method, tc.path, status, body, tc.status, tc.want)
			}
		})
	}
	t.Run("upload refusals", func(t *testing.T) {
		if status, body := upload(t, ts.URL, "x", "nonsense", []byte("x")); status != 400 || !strings.Contains(string(body), "'purpose'") {
			t.Fatalf("bad purpose: %d %s", status, body)
		}
		if status, body := do(t, "POST", ts.URL+"/v1/files", strings.NewReader("{}"), "Content-Type: application/json"); status != 400 {
			t.Fatalf("not multipart: %d %s", status, body)
		}
	})
}

// batchInput is a batch file of n chat requests for gpt-4o-mini.
func batchInput(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","max_tokens":%d,"messages":[{"role":"user","content":"Say %d things."}]}}`+"\n", i, 5+i, i)
	}
	return b.Bytes()
}

func createBatch(t testing.TB, base, fileID string, headers ...string) batchObject {
	t.Helper()
	status, body := do(t, "POST", base+"/v1/batches",
		strings.NewReader(`{"input_file_id":"`+fileID+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`),
		append([]string{"Content-Type: application/json"}, headers...)...)
	if status != 200 {
		t.Fatalf("create batch: %d %s", status, body)
	}
	var b batchObject
	strict(t, body, &b)
	return b
}

func getBatch(t testing.TB, base, id string) batchObject {
	t.Helper()
	status, body := do(t, "GET", base+"/v1/batches/"+id, nil)
	if status != 200 {
		t.Fatalf("get batch: %d %s", status, body)
	}
	var b batchObject
	strict(t, body, &b)
	return b
}

func fileLines(t testing.TB, base, id string) []outputLine {
	t.Helper()
	status, body := do(t, "GET", base+"/v1/files/"+id+"/content", nil)
	if status != 200 {
		t.Fatalf("content of %s: %d %s", id, status, body)
	}
	var out []outputLine
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var l outputLine
		strict(t, sc.Bytes(), &l)
		out = append(out, l)
	}
	return out
}

// TestBatches runs a batch to each end: completed (every line's answer, with the
// usage a direct request of the same body gets), expired and cancelled mid-way
// (the lines that ran, the rest in the error file), failed, and cancelled on
// request.
func TestBatches(t *testing.T) {
	s, ts := start(t, nil)
	_, body := upload(t, ts.URL, "in.jsonl", "batch", batchInput(3))
	var in fileObject
	strict(t, body, &in)

	// The usage each line gets answered directly.
	var direct [3]usage
	for i := range 3 {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
			fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":%d,"messages":[{"role":"user","content":"Say %d things."}]}`, 5+i, i))
		var c chatCompletion
		strict(t, readAll(t, resp), &c)
		direct[i] = *c.Usage
	}

	for _, tc := range []struct {
		name, header       string
		cancel             bool
		status             string
		completed, failed  int
		errorCode          string
		output, errorsFile bool
	}{
		{name: "completed", status: "completed", completed: 3, output: true},
		{name: "expired mid-way", header: "X-Mock-Batch: expired:2", status: "expired", completed: 2, failed: 1, errorCode: "batch_expired", output: true, errorsFile: true},
		{name: "cancelled mid-way", header: "X-Mock-Batch: cancelled:1", status: "cancelled", completed: 1, failed: 2, errorCode: "batch_cancelled", output: true, errorsFile: true},
		{name: "failed", header: "X-Mock-Batch: failed", status: "failed"},
		{name: "cancel request", cancel: true, status: "cancelled", failed: 3, errorCode: "batch_cancelled", errorsFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var headers []string
			if tc.header != "" {
				headers = append(headers, tc.header)
			}
			b := createBatch(t, ts.URL, in.ID, headers...)
			if !strings.HasPrefix(b.ID, "batch_") || b.Object != "batch" || b.Status != "validating" || b.RequestCounts.Total != 3 || b.InputFileID != in.ID {
				t.Fatalf("created %+v", b)
			}
			if got := getBatch(t, ts.URL, b.ID); got.Status != "in_progress" {
				t.Fatalf("status %q before the end, want in_progress", got.Status)
			}
			if tc.cancel {
				status, body := do(t, "POST", ts.URL+"/v1/batches/"+b.ID+"/cancel", nil)
				if status != 200 || !strings.Contains(string(body), `"status":"cancelling"`) {
					t.Fatalf("cancel: %d %s", status, body)
				}
			}
			s.FinishBatches()
			got := getBatch(t, ts.URL, b.ID)
			if got.Status != tc.status || got.RequestCounts.Completed != tc.completed || got.RequestCounts.Failed != tc.failed ||
				(got.OutputFileID != nil) != tc.output || (got.ErrorFileID != nil) != tc.errorsFile {
				t.Fatalf("ended %+v", got)
			}
			if tc.status == "failed" {
				if got.Errors == nil || len(got.Errors.Data) == 0 || got.FailedAt == nil {
					t.Fatalf("failed batch without errors: %+v", got)
				}
				return
			}
			if tc.output {
				lines := fileLines(t, ts.URL, *got.OutputFileID)
				if len(lines) != tc.completed {
					t.Fatalf("%d output lines, want %d", len(lines), tc.completed)
				}
				for i, l := range lines {
					var c chatCompletion
					strict(t, l.Response.Body, &c)
					if l.CustomID != fmt.Sprintf("r%d", i) || l.Response.StatusCode != 200 || l.Error != nil || *c.Usage != direct[i] {
						t.Fatalf("line %d: %+v usage %+v, want %+v", i, l, c.Usage, direct[i])
					}
				}
				if got.Model != "gpt-4o-mini" {
					t.Fatalf("model %q", got.Model)
				}
			}
			if tc.errorsFile {
				lines := fileLines(t, ts.URL, *got.ErrorFileID)
				if len(lines) != tc.failed {
					t.Fatalf("%d error lines, want %d", len(lines), tc.failed)
				}
				for _, l := range lines {
					if l.Response != nil || l.Error == nil || l.Error.Code != tc.errorCode {
						t.Fatalf("error line %+v", l)
					}
				}
			}
		})
	}

	t.Run("list and refusals", func(t *testing.T) {
		status, body := do(t, "GET", ts.URL+"/v1/batches?limit=2", nil)
		var l listObject
		strict(t, body, &l)
		if status != 200 || len(l.Data) != 2 || !l.HasMore {
			t.Fatalf("list: %d %s", status, body)
		}
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/v1/batches/batch_nope", ""},
			{"POST", "/v1/batches/batch_nope/cancel", ""},
			{"POST", "/v1/batches", `{"input_file_id":"file-nope","endpoint":"/v1/chat/completions","completion_window":"24h"}`},
		} {
			if status, body := do(t, tc.method, ts.URL+tc.path, strings.NewReader(tc.body)); status != 404 {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, status, body)
			}
		}
		if status, body := do(t, "POST", ts.URL+"/v1/batches", strings.NewReader(`{"input_file_id":"`+in.ID+`","endpoint":"/v1/chat/completions","completion_window":"1h"}`)); status != 400 {
			t.Errorf("1h window: %d %s", status, body)
		}
		if status, body := do(t, "POST", ts.URL+"/v1/batches", strings.NewReader(`{"input_file_id":"`+in.ID+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`), "X-Mock-Batch: sometime"); status != 400 {
			t.Errorf("bad plan: %d %s", status, body)
		}
	})

	t.Run("batch delay", func(t *testing.T) {
		s.BatchDelay = time.Millisecond
		defer func() { s.BatchDelay = 0 }()
		b := createBatch(t, ts.URL, in.ID)
		time.Sleep(5 * time.Millisecond)
		if got := getBatch(t, ts.URL, b.ID); got.Status != "completed" {
			t.Fatalf("status %q after BatchDelay", got.Status)
		}
	})
}

func TestStoredResponses(t *testing.T) {
	_, ts := start(t, nil)
	resp := post(t, context.Background(), ts.URL+"/v1/responses", `{"model":"gpt-4o-mini","input":"Hi there"}`)
	body := readAll(t, resp)
	var created struct {
		ID    string `json:"id"`
		Store bool   `json:"store"`
	}
	json.Unmarshal(body, &created)
	if !created.Store {
		t.Fatalf("store defaults to true: %s", body)
	}
	status, got := do(t, "GET", ts.URL+"/v1/responses/"+created.ID, nil)
	if status != 200 || !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(body)) {
		t.Fatalf("retrieve: %d %s\nwant %s", status, got, body)
	}
	status, items := do(t, "GET", ts.URL+"/v1/responses/"+created.ID+"/input_items", nil)
	var l listObject
	strict(t, items, &l)
	if status != 200 || len(l.Data) != 1 || !strings.Contains(string(l.Data[0]), `"text":"Hi there"`) {
		t.Fatalf("input items: %d %s", status, items)
	}
	if status, body := do(t, "POST", ts.URL+"/v1/responses/"+created.ID+"/cancel", nil); status != 400 {
		t.Fatalf("cancel of a foreground response: %d %s", status, body)
	}
	if status, body := do(t, "DELETE", ts.URL+"/v1/responses/"+created.ID, nil); status != 200 || !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _ := do(t, "GET", ts.URL+"/v1/responses/"+created.ID, nil); status != 404 {
		t.Fatalf("deleted response: %d", status)
	}

	resp = post(t, context.Background(), ts.URL+"/v1/responses", `{"model":"gpt-4o-mini","input":"Hi","store":false}`)
	json.Unmarshal(readAll(t, resp), &created)
	if status, _ := do(t, "GET", ts.URL+"/v1/responses/"+created.ID, nil); status != 404 || created.Store {
		t.Fatalf("store:false kept (%d, store %v)", status, created.Store)
	}
	// A streamed response is stored too.
	resp = post(t, context.Background(), ts.URL+"/v1/responses", `{"model":"gpt-4o-mini","input":"Hi","stream":true}`)
	events, err := readSSE(t, resp.Body)
	if err != nil || len(events) == 0 {
		t.Fatal(err)
	}
	var first struct {
		Response struct{ ID string } `json:"response"`
	}
	json.Unmarshal([]byte(events[0].Data), &first)
	if status, body := do(t, "GET", ts.URL+"/v1/responses/"+first.Response.ID, nil); status != 200 || !strings.Contains(string(body), `"status":"completed"`) {
		t.Fatalf("streamed response: %d %s", status, body)
	}
}

func TestStoredChatCompletions(t *testing.T) {
	_, ts := start(t, nil)
	ids := make([]string, 3)
	for i, model := range []string{"gpt-4o-mini", "gpt-4o", "gpt-4o-mini"} {
		resp := post(t, context.Background(), ts.URL+"/v1/chat/completions",
			fmt.Sprintf(`{"model":%q,"store":true,"metadata":{"n":"%d"},"messages":[{"role":"user","content":"Hi %d"}]}`, model, i, i))
		var c struct{ ID string }
		json.Unmarshal(readAll(t, resp), &c)
		ids[i] = c.ID
	}
	resp := post(t, context.Background(), ts.URL+"/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"not stored"}]}`)
	var unstored struct{ ID string }
	json.Unmarshal(readAll(t, resp), &unstored)

	list := func(query string) listObject {
		t.Helper()
		status, body := do(t, "GET", ts.URL+"/v1/chat/completions"+query, nil)
		var l listObject
		strict(t, body, &l)
		if status != 200 {
			t.Fatalf("list %s: %d %s", query, status, body)
		}
		return l
	}
	if l := list(""); len(l.Data) != 3 || *l.FirstID != ids[0] || *l.LastID != ids[2] || l.HasMore {
		t.Fatalf("list: %+v", l)
	}
	if l := list("?model=gpt-4o"); len(l.Data) != 1 || *l.FirstID != ids[1] {
		t.Fatalf("by model: %+v", l)
	}
	if l := list("?metadata%5Bn%5D=2"); len(l.Data) != 1 || *l.FirstID != ids[2] {
		t.Fatalf("by metadata: %+v", l)
	}
	if l := list("?order=desc&limit=1"); len(l.Data) != 1 || *l.FirstID != ids[2] || !l.HasMore {
		t.Fatalf("desc: %+v", l)
	}
	if status, body := do(t, "GET", ts.URL+"/v1/chat/completions/"+ids[0], nil); status != 200 || !strings.Contains(string(body), `"metadata":{"n":"0"}`) {
		t.Fatalf("get: %d %s", status, body)
	}
	if status, body := do(t, "GET", ts.URL+"/v1/chat/completions/"+ids[0]+"/messages", nil); status != 200 || !strings.Contains(string(body), `"content":"Hi 0"`) {
		t.Fatalf("messages: %d %s", status, body)
	}
	if status, body := do(t, "POST", ts.URL+"/v1/chat/completions/"+ids[0], strings.NewReader(`{"metadata":{"k":"v"}}`)); status != 200 || !strings.Contains(string(body), `"metadata":{"k":"v"}`) {
		t.Fatalf("update: %d %s", status, body)
	}
	if status, body := do(t, "DELETE", ts.URL+"/v1/chat/completions/"+ids[0], nil); status != 200 || !strings.Contains(string(body), `"object":"chat.completion.deleted"`) {
		t.Fatalf("delete: %d %s", status, body)
	}
	for _, id := range []string{ids[0], unstored.ID} {
		if status, _ := do(t, "GET", ts.URL+"/v1/chat/completions/"+id, nil); status != 404 {
			t.Fatalf("%s: %d, want 404", id, status)
		}
	}
}

// TestOfficialSDKObjects: the official Go SDK parses the stored objects' answers.
func TestOfficialSDKObjects(t *testing.T) {
	s, ts := start(t, nil)
	client := openai.NewClient(option.WithBaseURL(ts.URL+"/v1/"), option.WithAPIKey("sk-x"), option.WithMaxRetries(0))
	ctx := context.Background()
	f, err := client.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(batchInput(2)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil || f.Purpose != openai.FileObjectPurposeBatch || f.Bytes != int64(len(batchInput(2))) {
		t.Fatalf("files.create: %v %+v", err, f)
	}
	b, err := client.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil || b.Status != openai.BatchStatusValidating || b.RequestCounts.Total != 2 {
		t.Fatalf("batches.create: %v %+v", err, b)
	}
	s.FinishBatches()
	if b, err = client.Batches.Get(ctx, b.ID); err != nil || b.Status != openai.BatchStatusCompleted || b.OutputFileID == "" || b.RequestCounts.Completed != 2 {
		t.Fatalf("batches.retrieve: %v %+v", err, b)
	}
	content, err := client.Files.Content(ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(content.Body)
	content.Body.Close()
	if n := bytes.Count(data, []byte("\n")); n != 2 || !bytes.Contains(data, []byte(`"usage":{`)) {
		t.Fatalf("output file: %s", data)
	}
	r, err := client.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hi")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Responses.Get(ctx, r.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != r.ID || got.OutputText() != r.OutputText() || got.Usage.OutputTokens != r.Usage.OutputTokens {
		t.Fatalf("responses.retrieve: %v %+v", err, got)
	}
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Store: openai.Bool(true),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Chat.Completions.Get(ctx, c.ID); err != nil || got.Choices[0].Message.Content != c.Choices[0].Message.Content {
		t.Fatalf("chat.completions.retrieve: %v %+v", err, got)
	}
	page, err := client.Chat.Completions.List(ctx, openai.ChatCompletionListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != c.ID {
		t.Fatalf("chat.completions.list: %v %+v", err, page)
	}
}

// A background response answers queued, stays queued until it ends (at
// BackgroundDelay, or FinishBackground), then shows its final JSON with usage;
// one cancelled while queued ends cancelled with the prompt's usage only.
func TestBackgroundResponses(t *testing.T) {
	s, ts := start(t, func(s *mockupstream.Server) { s.BackgroundDelay = time.Hour })
	_, quick := start(t, func(s *mockupstream.Server) { s.BackgroundDelay = time.Nanosecond })
	create := func(ts *httptest.Server) string {
		body := readAll(t, post(t, context.Background(), ts.URL+"/v1/responses", `{"model":"gpt-4o-mini","input":"Hi there","background":true}`))
		var r struct{ ID, Status string }
		json.Unmarshal(body, &r)
		if r.Status != "queued" || !strings.Contains(string(body), `"usage":null`) {
			t.Fatalf("create: %s", body)
		}
		return r.ID
	}
	status := func(ts *httptest.Server, id string) (string, string) {
		t.Helper()
		_, body := do(t, "GET", ts.URL+"/v1/responses/"+id, nil)
		var r struct {
			Status string
			Usage  *struct {
				OutputTokens int64 `json:"output_tokens"`
			}
		}
		json.Unmarshal(body, &r)
		out := "null"
		if r.Usage != nil {
			out = fmt.Sprint(r.Usage.OutputTokens)
		}
		return r.Status, out
	}
	done, stopped := create(ts), create(ts)
	if st, u := status(ts, done); st != "queued" || u != "null" {
		t.Fatalf("while running: %s, usage %s", st, u)
	}
	if code, body := do(t, "POST", ts.URL+"/v1/responses/"+stopped+"/cancel", nil); code != 200 || !strings.Contains(string(body), `"status":"cancelled"`) {
		t.Fatalf("cancel: %d %s", code, body)
	}
	s.FinishBackground("")
	if st, u := status(ts, done); st != "completed" || u == "null" || u == "0" {
		t.Fatalf("finished: %s, output tokens %s", st, u)
	}
	if st, u := status(ts, stopped); st != "cancelled" || u != "0" {
		t.Fatalf("cancelled: %s, output tokens %s", st, u)
	}
	if st, u := status(quick, create(quick)); st != "completed" || u == "null" {
		t.Fatalf("after BackgroundDelay: %s, output tokens %s", st, u)
	}
}
