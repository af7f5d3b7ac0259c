package metering

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

// sseEvent is one event of a stream as an app reads it.
type sseEvent struct{ typ, data string }

// parseSSE splits a stream (LF line ends) into its events.
func parseSSE(stream string) []sseEvent {
	var out []sseEvent
	for _, block := range strings.Split(stream, "\n\n") {
		var ev sseEvent
		var data []string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			}
		}
		if len(data) > 0 {
			ev.data = strings.Join(data, "\n")
			out = append(out, ev)
		}
	}
	return out
}

// chunk is what the tests read of a chat or completions chunk.
type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Text  string
		Delta struct {
			Content   string
			ToolCalls []struct {
				Function struct{ Name, Arguments string }
			} `json:"tool_calls"`
		}
		FinishReason *string `json:"finish_reason"`
	}
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	}
}

// chatChunk is a chat stream event with one choice's content.
func chatChunk(index int, content string) string {
	c, _ := json.Marshal(content)
	return fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":%d,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}`+"\n\n", index, c)
}

// chatFinish is a chat stream event with a choice's finish reason.
func chatFinish(index int, reason string) string {
	return fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-2024-08-06","choices":[{"index":%d,"delta":{},"logprobs":null,"finish_reason":%q}]}`+"\n\n", index, reason)
}

func chatUsage(prompt, completion int64) string {
	return fmt.Sprintf(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", prompt, completion, prompt+completion)
}

// words is a reply of n words, each one o200k token (" word" with its space).
func words(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = " word"
	}
	out[0] = "Hello"
	return out
}

// limited runs stream through a stream filter under limit l, one event per upstream
// read, and returns what the app got, the meter's Result and how many of the
// upstream's chunks were never read.
func limited(t *testing.T, req *Request, tok Tokenizer, l Limit, events []string) (string, Result, int) {
	t.Helper()
	m := NewResponseMeter(req, tok, l.Input)
	m.SetLimit(l)
	src := &chunkReader{}
	for _, e := range events {
		src.chunks = append(src.chunks, []byte(e))
	}
	out, err := io.ReadAll(NewStreamFilter(src, m))
	if err != nil {
		t.Fatal(err)
	}
	return string(out), m.Result(), len(src.chunks)
}

// chatLimit is a limit of cap tokens per choice on a request of choices outputs.
func chatLimit(cap, choices int64) Limit {
	return Limit{PerChoice: cap, Choices: choices, Price: limitPrice, Input: Tokens{Input: 10}, Hold: 1 << 40}
}

func TestCutChatStream(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprintf("include_usage=%v", includeUsage), func(t *testing.T) {
			var events []string
			for _, w := range words(20) {
				events = append(events, chatChunk(0, w))
			}
			events = append(events, chatFinish(0, "stop"), chatUsage(10, 20), "data: [DONE]\n\n")
			out, res, unread := limited(t, requestFor(t, ChatCompletions, includeUsage), tok, chatLimit(3, 1), events)
			evs := parseSSE(out)
			var text strings.Builder
			for _, e := range evs[:3] {
				var c chunk
				if err := json.Unmarshal([]byte(e.data), &c); err != nil {
					t.Fatalf("%s: %v", e.data, err)
				}
				text.WriteString(c.Choices[0].Delta.Content)
			}
			if text.String() != "Hello word word" {
				t.Fatalf("relayed %q, want the first 3 tokens", text.String())
			}
			rest := evs[3:]
			// The 4th word's event, cut to nothing, then the finish chunk.
			var cut, fin chunk
			mustJSON(t, rest[0].data, &cut)
			mustJSON(t, rest[1].data, &fin)
			if len(cut.Choices) != 1 || cut.Choices[0].Delta.Content != "" {
				t.Fatalf("the crossing event relayed %+v", cut)
			}
			if fin.ID != "chatcmpl-1" || fin.Object != "chat.completion.chunk" || fin.Model != "gpt-4o-2024-08-06" ||
				len(fin.Choices) != 1 || fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != "length" {
				t.Fatalf("finish chunk %s", rest[1].data)
			}
			rest = rest[2:]
			if includeUsage {
				var u chunk
				mustJSON(t, rest[0].data, &u)
				if u.Usage == nil || u.Usage.PromptTokens != 10 || u.Usage.CompletionTokens != 3 || u.Usage.TotalTokens != 13 || len(u.Choices) != 0 {
					t.Fatalf("usage chunk %s: want the billed 10 + 3", rest[0].data)
				}
				rest = rest[1:]
			}
			if len(rest) != 1 || rest[0].data != "[DONE]" {
				t.Fatalf("after the finish: %+v, want [DONE] alone", rest)
			}
			if !res.Cut || !res.Done || res.Status != "length" || res.Source != SourceLocal || res.Local.Output != 3 || res.Unrelayed != 1 {
				t.Fatalf("Result %+v", res)
			}
			if unread == 0 {
				t.Fatal("the filter read the upstream to the end after the cut")
			}
		})
	}
}

func mustJSON(t *testing.T, data string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(data), v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
}

// contents returns the content each choice relayed, and its finish reasons.
func contents(t *testing.T, out string) (text map[int]string, finishes map[int][]string, usage []string, done bool) {
	t.Helper()
	text, finishes = map[int]string{}, map[int][]string{}
	for _, e := range parseSSE(out) {
		if e.data == "[DONE]" {
			done = true
			continue
		}
		var c chunk
		mustJSON(t, e.data, &c)
		for _, ch := range c.Choices {
			text[ch.Index] += ch.Delta.Content + ch.Text
			for _, tc := range ch.Delta.ToolCalls {
				text[ch.Index] += tc.Function.Name + tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				finishes[ch.Index] = append(finishes[ch.Index], *ch.FinishReason)
			}
		}
		if c.Usage != nil {
			usage = append(usage, fmt.Sprintf("%d+%d", c.Usage.PromptTokens, c.Usage.CompletionTokens))
		}
	}
	return text, finishes, usage, done
}

func TestCutInsideAnEvent(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	for _, tc := range []struct {
		name   string
		events []string
		cap    int64
		want   string
	}{
		{"mid-event", []string{chatChunk(0, "one two three four five")}, 2, "one two"},
		{"a cap of one token", []string{chatChunk(0, "Hello"), chatChunk(0, " there")}, 1, "Hello"},
		{"escapes", []string{chatChunk(0, "a\n\"b\"\tc d e f")}, 4, "a\n\"b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := append(tc.events, chatFinish(0, "stop"), "data: [DONE]\n\n")
			out, res, _ := limited(t, requestFor(t, ChatCompletions, false), tok, chatLimit(tc.cap, 1), events)
			text, fin, _, done := contents(t, out)
			if text[0] != tc.want || !done || len(fin[0]) != 1 || fin[0][0] != "length" {
				t.Fatalf("relayed %q finishes %v done %v, want %q, one length and [DONE]:\n%s", text[0], fin, done, tc.want, out)
			}
			if got := int64(tok.Count(text[0])); got > tc.cap || res.Local.Output != got {
				t.Fatalf("relayed %d tokens (meter: %d), cap %d", got, res.Local.Output, tc.cap)
			}
		})
	}
}

// A cap that falls between two tokens of one character cuts before the character:
// the relayed text stays valid UTF-8, one token under the cap.
func TestCutAtACharacterBoundary(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	enc := tok.(tokenEnder)
	var char string
	for _, c := range []string{"🦜", "𝔘", "🪿", "ꙮ", "𓀀", "🧑‍🚀"} {
		if ends := enc.TokenEnds(nil, "ab"+c); len(ends) >= 3 && ends[0] == 2 && !utf8.RuneStart(("ab" + c + "x")[ends[1]]) {
			char = c
			break
		}
	}
	if char == "" {
		t.Fatal("no character of several tokens found to test with")
	}
	events := []string{chatChunk(0, "ab"+char+"cd"), chatFinish(0, "stop"), "data: [DONE]\n\n"}
	out, res, _ := limited(t, requestFor(t, ChatCompletions, false), tok, chatLimit(2, 1), events)
	text, _, _, _ := contents(t, out)
	if text[0] != "ab" || !utf8.ValidString(out) || res.Local.Output != 1 {
		t.Fatalf("relayed %q (%d tokens), want \"ab\" without the split %q:\n%s", text[0], res.Local.Output, char, out)
	}
}

func TestCutCompletionsStream(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	ev := func(text string) string {
		c, _ := json.Marshal(text)
		return `data: {"id":"cmpl-1","object":"text_completion","created":7,"model":"gpt-3.5-turbo-instruct","choices":[{"text":` + string(c) + `,"index":0,"logprobs":null,"finish_reason":null}]}` + "\n\n"
	}
	events := []string{ev("Once"), ev(" upon"), ev(" a"), ev(" time"), "data: [DONE]\n\n"}
	out, res, _ := limited(t, requestFor(t, Completions, true), tok, chatLimit(2, 1), events)
	evs := parseSSE(out)
	var fin chunk
	mustJSON(t, evs[len(evs)-3].data, &fin)
	text, finishes, usage, done := contents(t, out)
	if text[0] != "Once upon" || len(finishes[0]) != 1 || finishes[0][0] != "length" || !done ||
		fin.Object != "text_completion" || fin.ID != "cmpl-1" || len(usage) != 1 || usage[0] != "10+2" {
		t.Fatalf("relayed %q %v %v %v:\n%s", text[0], finishes, usage, done, out)
	}
	if !res.Cut || res.Status != "length" {
		t.Fatalf("Result %+v", res)
	}
}

func TestCutResponsesStream(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	data := string(fixture(t, "responses_stream.sse")) // "Hi" then " there! How can I help?"
	var events []string
	for _, ev := range strings.SplitAfter(data, "\n\n") {
		if ev != "" {
			events = append(events, ev)
		}
	}
	out, res, unread := limited(t, requestFor(t, Responses, false), tok, chatLimit(2, 1), events)
	evs := parseSSE(out)
	last := evs[len(evs)-1]
	var inc struct {
		Type           string `json:"type"`
		SequenceNumber int    `json:"sequence_number"`
		Response       struct {
			ID                string                  `json:"id"`
			Status            string                  `json:"status"`
			Model             string                  `json:"model"`
			IncompleteDetails struct{ Reason string } `json:"incomplete_details"`
			Usage             struct {
				InputTokens  int64 `json:"input_tokens"`
				OutputTokens int64 `json:"output_tokens"`
				TotalTokens  int64 `json:"total_tokens"`
			} `json:"usage"`
			Instructions string `json:"instructions"`
		} `json:"response"`
	}
	mustJSON(t, last.data, &inc)
	r := inc.Response
	if last.typ != "response.incomplete" || inc.Type != "response.incomplete" || inc.SequenceNumber != 6 ||
		r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" ||
		r.ID != "resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654" || r.Model != "gpt-4.1-2025-04-14" ||
		r.Instructions != "You are a helpful assistant." || r.Usage.InputTokens != 10 || r.Usage.OutputTokens != 2 || r.Usage.TotalTokens != 12 {
		t.Fatalf("last event %s %s", last.typ, last.data)
	}
	var relayed strings.Builder
	for _, e := range evs {
		var d struct{ Type, Delta string }
		mustJSON(t, e.data, &d)
		if d.Type == "response.output_text.delta" {
			relayed.WriteString(d.Delta)
		}
	}
	if relayed.String() != "Hi there" || !res.Cut || res.Status != "incomplete" || !res.Done || unread == 0 {
		t.Fatalf("relayed %q, Result %+v, %d unread", relayed.String(), res, unread)
	}
}

// With n > 1 each choice has its own cap: the one that passes it ends with length
// while the other goes on; the upstream's later text and finish for the cut choice
// are not relayed, and its usage, past the bound, is relayed with the billed numbers.
func TestCutPerChoice(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	events := []string{chatChunk(0, "Hello"), chatChunk(1, "Hi"), chatChunk(0, " word word word"), chatChunk(1, " you"),
		chatChunk(0, " word word"), chatFinish(0, "stop"), chatFinish(1, "stop"), chatUsage(10, 500), "data: [DONE]\n\n"}
	l := chatLimit(3, 2)
	l.Hold = l.MaxCost()
	out, res, _ := limited(t, requestFor(t, ChatCompletions, true), tok, l, events)
	text, finishes, usage, done := contents(t, out)
	if text[0] != "Hello word word" || text[1] != "Hi you" || !done {
		t.Fatalf("relayed %v", text)
	}
	if fmt.Sprint(finishes) != "map[0:[length] 1:[stop]]" {
		t.Fatalf("finishes %v", finishes)
	}
	// The claim (500 output tokens) is cut to the cap of both choices.
	if len(usage) != 1 || usage[0] != "10+6" {
		t.Fatalf("usage relayed %v, want the billed 10+6", usage)
	}
	if res.Source != SourceUpstream || res.Tokens.Output != 500 || !res.Cut || res.Unrelayed != 3 {
		t.Fatalf("Result %+v", res)
	}
	if b := l.Bill(res); b.Tokens.Output != 6 || b.ExcessTokens != 494 {
		t.Fatalf("Bill %+v", b)
	}
}

// A stream within its cap whose usage claims ten times the text: relayed as it is,
// but for the usage chunk, which carries the billed numbers.
func TestLimitRewritesInflatedUsage(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	events := []string{chatChunk(0, "Hello"), chatChunk(0, " word"), chatFinish(0, "stop"), chatUsage(100, 20), "data: [DONE]\n\n"}
	l := chatLimit(4, 1)
	l.Hold = l.MaxCost()
	out, res, _ := limited(t, requestFor(t, ChatCompletions, true), tok, l, events)
	text, finishes, usage, done := contents(t, out)
	b := l.Bill(res)
	if text[0] != "Hello word" || finishes[0][0] != "stop" || !done || res.Cut {
		t.Fatalf("relayed %q %v, Result %+v", text[0], finishes, res)
	}
	if want := fmt.Sprintf("%d+%d", b.Tokens.Input, b.Tokens.Output); len(usage) != 1 || usage[0] != want || b.Excess == 0 {
		t.Fatalf("usage relayed %v, billed %+v", usage, b)
	}
}

// Tool call arguments are output too: cut like text, the call kept whole otherwise.
func TestCutToolCallArguments(t *testing.T) {
	tok := tokenizer(t, O200kBase)
	call := func(name, args string) string {
		a, _ := json.Marshal(args)
		return `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"` + name + `","arguments":` + string(a) + `}}]},"finish_reason":null}]}` + "\n\n"
	}
	events := []string{call("lookup", ""), call("", `{"city": "Paris", "country": "France"}`), chatFinish(0, "tool_calls"), "data: [DONE]\n\n"}
	out, res, _ := limited(t, requestFor(t, ChatCompletions, false), tok, chatLimit(5, 1), events)
	text, finishes, _, done := contents(t, out)
	if got := int64(tok.Count("lookup")) + int64(tok.Count(strings.TrimPrefix(text[0], "lookup"))); got > 5 || got < 4 || !strings.HasPrefix(text[0], `lookup{"city`) {
		t.Fatalf("relayed %q (%d tokens), want the name and arguments cut to 5 tokens", text[0], got)
	}
	if !done || finishes[0][0] != "length" || !res.Cut {
		t.Fatalf("finishes %v done %v", finishes, done)
	}
}

// A stream that never reaches its cap goes through byte for byte, with the Result
// an unlimited meter gives.
func TestLimitLeavesStreamsWithinTheCapAlone(t *testing.T) {
	for _, tc := range meterCases {
		if strings.HasSuffix(tc.fixture, ".json") {
			continue
		}
		t.Run(tc.fixture, func(t *testing.T) {
			data := fixture(t, tc.fixture)
			req := requestFor(t, tc.ep, tc.includeUsage)
			plain, plainRes := filterAll(t, tc.ep, tc.includeUsage, [][]byte{bytes.Clone(data)}, 1<<16)
			m := NewResponseMeter(req, wordTokenizer, input)
			m.SetLimit(Limit{PerChoice: 1 << 20, Choices: 4, Price: limitPrice, Input: input, Hold: 1 << 40})
			out, err := io.ReadAll(NewStreamFilter(io.NopCloser(bytes.NewReader(data)), m))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, plain) || m.Result() != plainRes {
				t.Fatalf("under a limit not reached:\n%s\n%+v\nwithout one:\n%s\n%+v", out, m.Result(), plain, plainRes)
			}
		})
	}
}

// An event too large to meter ends a limited stream instead of passing through.
func TestCutOversizeEvent(t *testing.T) {
	events := []string{chatChunk(0, "Hello"), chatChunk(0, strings.Repeat("x", maxEventSize+64<<10)), "data: [DONE]\n\n"}
	out, res, _ := limited(t, requestFor(t, ChatCompletions, false), wordTokenizer, chatLimit(100, 1), events)
	if len(out) > 4096 {
		t.Fatalf("relayed %d bytes of an event too large to meter", len(out))
	}
	text, finishes, _, done := contents(t, out)
	if text[0] != "Hello" || len(finishes[0]) != 1 || finishes[0][0] != "length" || !done || !res.Cut {
		t.Fatalf("relayed %v %v %v:\n%s", text, finishes, done, out)
	}
}

// Completions with echo relay the prompt: the stream is not cut, only billed within
// the bound.
func TestEchoIsNotCut(t *testing.T) {
	req := mustParse(t, Completions, `{"model":"m","prompt":"a b c d","echo":true,"stream":true,"max_tokens":1}`)
	ev := `data: {"choices":[{"text":"a b c d e","index":0}]}` + "\n\n"
	out, res, _ := limited(t, req, wordTokenizer, req.Limit(limitPrice, Tokens{Input: 4}, 0, 1<<40), []string{ev, "data: [DONE]\n\n"})
	if out != ev+"data: [DONE]\n\n" || res.Cut {
		t.Fatalf("echo stream changed: %q %+v", out, res)
	}
}

// relayedPerGroup meters what an app received, with no limit, and returns the
// output tokens of each group a limit of choices counts (wordTokenizer).
func relayedPerGroup(t fataler, ep Endpoint, includeUsage bool, out []byte, choices int64) map[int]int64 {
	m := NewResponseMeter(requestFor(t, ep, includeUsage), wordTokenizer, input)
	if _, err := io.ReadAll(NewStreamFilter(io.NopCloser(bytes.NewReader(out)), m)); err != nil {
		t.Fatalf("Read: %v", err)
	}
	g := (&ResponseMeter{spec: m.spec}).withLimitGroups(choices)
	got := map[int]int64{}
	for _, tx := range m.texts {
		got[g.group(tx.a)] += tx.counted + m.count(string(tx.buf))
	}
	return got
}

// withLimitGroups is the limiter SetLimit would make for choices, for its grouping.
func (m *ResponseMeter) withLimitGroups(choices int64) *limiter {
	m.SetLimit(Limit{PerChoice: 1, Choices: choices})
	return m.lim
}

// limitedAll is filterAll under a limit of perChoice tokens per choice, with the
// price p and a hold that never binds.
func limitedAll(t fataler, ep Endpoint, includeUsage bool, chunks [][]byte, readLen int, l Limit) ([]byte, Result) {
	m := NewResponseMeter(requestFor(t, ep, includeUsage), wordTokenizer, input)
	m.SetLimit(l)
	f := NewStreamFilter(&chunkReader{chunks: chunks}, m)
	var out []byte
	buf := make([]byte, readLen)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	return out, m.Result()
}

// checkCut holds a limited run to what the cut promises: chunking changes nothing;
// no group relays more than the cap; the last usage relayed costs at most what the
// request could; a stream cut for good ends as OpenAI ends one at its max tokens.
// Unpriced (the bound never binds), a stream never cut is relayed as without a
// limit.
func checkCut(t fataler, ep Endpoint, includeUsage bool, data []byte, cuts []int, readLen int, perChoice int64, priced bool) {
	t.Helper()
	l := Limit{PerChoice: perChoice, Choices: 1, Input: input, Hold: 1 << 50}
	if priced {
		l.Price = limitPrice
	}
	whole, wholeRes := limitedAll(t, ep, includeUsage, [][]byte{bytes.Clone(data)}, 1<<16, l)
	chunked, chunkedRes := limitedAll(t, ep, includeUsage, split(bytes.Clone(data), sortedInts(cuts)), readLen, l)
	if !bytes.Equal(whole, chunked) || wholeRes != chunkedRes {
		t.Fatalf("%s cap %d: chunking changed the outcome:\n%q %+v\nvs\n%q %+v", ep, perChoice, chunked, chunkedRes, whole, wholeRes)
	}
	for g, n := range relayedPerGroup(t, ep, includeUsage, whole, 1) {
		if n > perChoice {
			t.Fatalf("%s: group %d relayed %d tokens past the cap %d:\n%q", ep, g, n, perChoice, whole)
		}
	}
	relayed := NewResponseMeter(requestFor(t, ep, true), nil, input)
	if _, err := io.ReadAll(NewStreamFilter(io.NopCloser(bytes.NewReader(whole)), relayed)); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if relayed.hasUsage && l.Price.Cost(relayed.usage) > l.MaxCost() {
		t.Fatalf("%s: relayed usage %+v costs %d, past MaxCost %d:\n%q", ep, relayed.usage, l.Price.Cost(relayed.usage), l.MaxCost(), whole)
	}
	if !wholeRes.Cut {
		if !priced {
			plain, plainRes := filterAll(t, ep, includeUsage, [][]byte{bytes.Clone(data)}, 1<<16)
			if !bytes.Equal(whole, plain) || wholeRes != plainRes {
				t.Fatalf("%s: a stream never cut was changed:\n%q %+v\nvs\n%q %+v", ep, whole, wholeRes, plain, plainRes)
			}
		}
		return
	}
	evs := parseSSE(strings.ReplaceAll(strings.ReplaceAll(string(whole), "\r\n", "\n"), "\r", "\n"))
	last := evs[len(evs)-1]
	switch {
	case ep == Responses && (last.typ != "response.incomplete" || !strings.Contains(last.data, `"incomplete_details":{"reason":"max_output_tokens"}`)):
		t.Fatalf("a cut responses stream ends with %+v", last)
	case ep != Responses && last.data != "[DONE]":
		t.Fatalf("a cut stream ends with %+v", last)
	}
	if wholeRes.Status != map[bool]string{true: "incomplete", false: "length"}[ep == Responses] || !wholeRes.Done {
		t.Fatalf("Result %+v of a cut stream", wholeRes)
	}
}

// Random streams of the usual events, cut at random caps.
func TestCutStreamProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		data, _ := genStream(rt)
		includeUsage := rapid.Bool().Draw(rt, "includeUsage")
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(data)+1), 0, 20).Draw(rt, "cuts")
		perChoice := rapid.Int64Range(1, 12).Draw(rt, "cap")
		checkCut(rt, ChatCompletions, includeUsage, data, cuts, rapid.IntRange(1, 64).Draw(rt, "readLen"), perChoice, rapid.Bool().Draw(rt, "priced"))
	})
}

// FuzzCutStream: whatever the stream, the cut keeps its promises (checkCut), for
// chat and responses.
func FuzzCutStream(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint64(len(data)), uint8(1), false)
		f.Add(data, uint64(3), uint8(3), true)
	}
	f.Add([]byte(chatChunk(0, "Hello there my friend")+chatChunk(1, "a b")+chatFinish(0, "stop")), uint64(9), uint8(2), true)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, perChoice uint8, includeUsage bool) {
		rng := rand.New(rand.NewPCG(seed, 2))
		var cuts []int
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(len(data)+1))
		}
		for _, ep := range []Endpoint{ChatCompletions, Responses} {
			for _, priced := range []bool{false, true} {
				checkCut(t, ep, includeUsage, data, cuts, 1+rng.IntN(40), 1+int64(perChoice%16), priced)
			}
		}
	})
}
