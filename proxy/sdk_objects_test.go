package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/creditgate/creditgate/billing"
	"github.com/creditgate/creditgate/metering"
)

// TestOfficialGoSDKObjects: an app on the official Go SDK uploads a batch file,
// creates a batch and follows it to its output, and reads back a stored
// response and chat completion, through the proxy; another account's SDK gets
// the SDK's not-found error for each.
func TestOfficialGoSDKObjects(t *testing.T) {
	h, _ := newObjectHarness(t)
	key := h.account("acme", "10.00")
	otherKey := h.account("beta", "10.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	other := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(otherKey), option.WithMaxRetries(0))
	notFound := func(what string, err error) {
		t.Helper()
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Fatalf("%s by another account: %v, want the SDK's 404", what, err)
		}
	}

	input := batchFile(3)
	f, err := client.Files.New(h.ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(input), "batch.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil || f.Bytes != int64(len(input)) || f.Purpose != openai.FileObjectPurposeBatch {
		t.Fatalf("files.create: %v %+v", err, f)
	}
	if got, err := client.Files.Get(h.ctx, f.ID); err != nil || got.ID != f.ID {
		t.Fatalf("files.retrieve: %v %+v", err, got)
	}
	_, err = other.Files.Get(h.ctx, f.ID)
	notFound("files.retrieve", err)

	b, err := client.Batches.New(h.ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil || b.Status != openai.BatchStatusValidating || b.InputFileID != f.ID {
		t.Fatalf("batches.create: %v %+v", err, b)
	}
	if held := h.get("acme").Reserved; held != batchWorstCase(t, h, input) {
		t.Fatalf("held %s", held)
	}
	if got, err := client.Batches.Get(h.ctx, b.ID); err != nil || got.Status != openai.BatchStatusInProgress {
		t.Fatalf("batches.retrieve: %v %+v", err, got)
	}
	_, err = other.Batches.Get(h.ctx, b.ID)
	notFound("batches.retrieve", err)
	_, err = other.Batches.New(h.ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1ChatCompletions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	notFound("batches.create of acme's file", err)

	h.mock.FinishBatches()
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Settled != 1 {
		t.Fatalf("settle: %+v %v", sw, err)
	}
	b, err = client.Batches.Get(h.ctx, b.ID)
	if err != nil || b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 3 || b.OutputFileID == "" {
		t.Fatalf("batches.retrieve after the end: %v %+v", err, b)
	}
	content, err := client.Files.Content(h.ctx, b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(content.Body)
	content.Body.Close()
	if bytes.Count(out, []byte("\n")) != 3 {
		t.Fatalf("output file: %s", out)
	}
	_, err = other.Files.Content(h.ctx, b.OutputFileID)
	notFound("files.content of acme's batch output", err)
	cost, _ := outputCost(t, h, b.OutputFileID)
	if ev := h.lastEvent("acme"); ev.Type != billing.EventUsage || ev.Cost != cost {
		t.Fatalf("batch billed %+v, want %s", ev, cost)
	}
	page, err := client.Batches.List(h.ctx, openai.BatchListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b.ID {
		t.Fatalf("batches.list: %v %+v", err, page)
	}
	if page, err := other.Batches.List(h.ctx, openai.BatchListParams{}); err != nil || len(page.Data) != 0 {
		t.Fatalf("batches.list by another account: %v %+v", err, page)
	}

	r, err := client.Responses.New(h.ctx, responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello")}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client.Responses.Get(h.ctx, r.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != r.ID || got.OutputText() != r.OutputText() {
		t.Fatalf("responses.retrieve: %v %+v", err, got)
	}
	_, err = other.Responses.Get(h.ctx, r.ID, responses.ResponseGetParams{})
	notFound("responses.retrieve", err)
	if items, err := client.Responses.InputItems.List(h.ctx, r.ID, responses.InputItemListParams{}); err != nil || len(items.Data) != 1 {
		t.Fatalf("responses.input_items.list: %v %+v", err, items)
	}
	if err := other.Responses.Delete(h.ctx, r.ID); err == nil {
		t.Fatal("responses.delete by another account succeeded")
	}
	if err := client.Responses.Delete(h.ctx, r.ID); err != nil {
		t.Fatalf("responses.delete: %v", err)
	}

	c, err := client.Chat.Completions.New(h.ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Store: openai.Bool(true),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := client.Chat.Completions.Get(h.ctx, c.ID); err != nil || got.ID != c.ID {
		t.Fatalf("chat.completions.retrieve: %v %+v", err, got)
	}
	_, err = other.Chat.Completions.Get(h.ctx, c.ID)
	notFound("chat.completions.retrieve", err)
	if list, err := client.Chat.Completions.List(h.ctx, openai.ChatCompletionListParams{}); err != nil || len(list.Data) != 1 || list.Data[0].ID != c.ID {
		t.Fatalf("chat.completions.list: %v %+v", err, list)
	}
	if list, err := other.Chat.Completions.List(h.ctx, openai.ChatCompletionListParams{}); err != nil || len(list.Data) != 0 {
		t.Fatalf("chat.completions.list by another account: %v %+v", err, list)
	}
	files := client.Files.ListAutoPaging(h.ctx, openai.FileListParams{})
	n := 0
	for files.Next() {
		n++
	}
	if err := files.Err(); err != nil || n != 2 { // the input and the output
		t.Fatalf("files.list: %d files, %v", n, err)
	}
}

// TestOfficialGoSDKBackgroundResponses: an app on the official Go SDK creates a
// background response, polls it with responses.retrieve until it completed and
// cancels another one, through the proxy; each is billed once it ended, by its
// usage, and the account sees the holds meanwhile.
func TestOfficialGoSDKBackgroundResponses(t *testing.T) {
	h, _ := newObjectHarness(t)
	key := h.account("acme", "10.00")
	client := openai.NewClient(option.WithBaseURL(h.server.URL+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	params := responses.ResponseNewParams{Model: "gpt-4o-mini", Background: openai.Bool(true), MaxOutputTokens: openai.Int(64),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Tell me about double-entry bookkeeping.")}}
	done, err := client.Responses.New(h.ctx, params)
	if err != nil || done.Status != responses.ResponseStatusQueued || !done.Background {
		t.Fatalf("responses.create: %v %+v", err, done)
	}
	stopped, err := client.Responses.New(h.ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	held := h.get("acme").Reserved
	if held <= 0 {
		t.Fatal("nothing held for two background responses")
	}
	if got, err := client.Responses.Cancel(h.ctx, stopped.ID); err != nil || got.Status != responses.ResponseStatusCancelled {
		t.Fatalf("responses.cancel: %v %+v", err, got)
	}
	h.mock.FinishBackground("")
	got, err := client.Responses.Get(h.ctx, done.ID, responses.ResponseGetParams{})
	if err != nil || got.Status != responses.ResponseStatusCompleted || got.OutputText() == "" {
		t.Fatalf("responses.retrieve: %v %+v", err, got)
	}
	if sw, err := h.proxy.SettleBatches(h.ctx); err != nil || sw.Settled != 2 {
		t.Fatalf("poller round: %+v %v", sw, err)
	}
	_, price, _ := h.settings.Load().Pricing.Resolve("gpt-4o-mini")
	full := price.Cost(metering.Tokens{Input: got.Usage.InputTokens, CachedInput: got.Usage.InputTokensDetails.CachedTokens, Output: got.Usage.OutputTokens})
	promptOnly := price.Cost(metering.Tokens{Input: got.Usage.InputTokens, CachedInput: got.Usage.InputTokensDetails.CachedTokens})
	if a := h.get("acme"); a.Reserved != 0 || a.Balance() != usd("10.00")-full-promptOnly || full <= promptOnly {
		t.Fatalf("reserved %s, balance %s; want 10.00 - %s (completed) - %s (cancelled before any output)", a.Reserved, a.Balance(), full, promptOnly)
	}
}
