package metering

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// chunkReader returns its chunks one Read at a time (splitting a chunk that does not
// fit), then EOF.
type chunkReader struct {
	chunks [][]byte
	closed bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *chunkReader) Close() error { c.closed = true; return nil }

// split cuts data at the given offsets.
func split(data []byte, cuts []int) [][]byte {
	var out [][]byte
	at := 0
	for _, c := range cuts {
		if c > at && c < len(data) {
			out = append(out, data[at:c])
			at = c
		}
	}
	return append(out, data[at:])
}

// filterAll runs data through a stream filter in the given chunks, reading with
// buffers of readLen bytes, and returns the forwarded bytes and the meter's Result.
func filterAll(t fataler, ep Endpoint, includeUsage bool, chunks [][]byte, readLen int) ([]byte, Result) {
	m := NewResponseMeter(requestFor(t, ep, includeUsage), wordTokenizer, input)
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

// sseEvents are the building blocks of generated streams.
var sseEvents = []string{
	`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}`,
	`data: {"choices":[{"index":0,"delta":{"content":"Hello there"},"finish_reason":null}],"usage":null}`,
	`data: {"choices":[{"index":1,"delta":{"content":" and\nmore words"},"finish_reason":null}]}`,
	`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\": 1}"}}]},"finish_reason":null}]}`,
	`data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}`,
	`data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":4}}}`,
	`data: [DONE]`,
	`: keep-alive`,
	`event: message` + "\n" + `id: 7` + "\n" + `data: {"choices":[{"index":0,"delta":{"content":"tagged"}}]}`,
	`data: {"choices":[{"index":0,` + "\n" + `data: "delta":{"content":"split over lines"}}]}`,
	`data:{"choices":[{"index":0,"delta":{"content":"no space after colon"}}]}`,
	`retry: 1000`,
	`data`,
	`data: not json at all`,
	``,
}

// genStream draws a stream of events with one line ending style, with or without a
// blank line after the last event. It also returns the stream a client that did not
// ask for usage must receive: the same bytes less the usage-only events.
func genStream(t *rapid.T) (stream, hidden []byte) {
	eol := rapid.SampledFrom([]string{"\n", "\r\n", "\r"}).Draw(t, "eol")
	n := rapid.IntRange(0, 12).Draw(t, "events")
	var all, shown strings.Builder
	for i := range n {
		ev := strings.ReplaceAll(rapid.SampledFrom(sseEvents).Draw(t, "event"), "\n", eol) + eol
		if i < n-1 || rapid.Bool().Draw(t, "final blank line") {
			ev += eol
		}
		all.WriteString(ev)
		if !isUsageChunk(ev) {
			shown.WriteString(ev)
		}
	}
	return []byte(all.String()), []byte(shown.String())
}

// Random chunk boundaries and read sizes forward the same bytes and give the same
// Result as one big chunk; the usage chunk is hidden if and only if the client did
// not ask for usage, and nothing else is ever changed.
func TestStreamFilterChunkingProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		data, hidden := genStream(rt)
		includeUsage := rapid.Bool().Draw(rt, "includeUsage")
		cuts := rapid.SliceOfN(rapid.IntRange(0, len(data)+1), 0, 20).Draw(rt, "cuts")
		readLen := rapid.IntRange(1, 64).Draw(rt, "readLen")
		wholeOut, wholeRes := filterAll(rt, ChatCompletions, includeUsage, [][]byte{bytes.Clone(data)}, 1<<16)
		cutOut, cutRes := filterAll(rt, ChatCompletions, includeUsage, split(bytes.Clone(data), sortedInts(cuts)), readLen)
		if !bytes.Equal(wholeOut, cutOut) {
			rt.Fatalf("chunked output differs:\n%q\nvs\n%q", cutOut, wholeOut)
		}
		if wholeRes != cutRes {
			rt.Fatalf("chunked Result %+v, whole %+v", cutRes, wholeRes)
		}
		want := hidden
		if includeUsage {
			want = data
		}
		if !bytes.Equal(wholeOut, want) {
			rt.Fatalf("include_usage=%v: output\n%q\nwant\n%q", includeUsage, wholeOut, want)
		}
	})
}

func sortedInts(s []int) []int {
	s = append([]int(nil), s...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func FuzzStreamFilter(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.sse"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, uint64(len(data)), false)
		f.Add(bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n")), uint64(7), true)
	}
	f.Add([]byte("data: x\r"), uint64(1), false)
	f.Add([]byte("\n\n\r\r\n"), uint64(3), true)
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, includeUsage bool) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var cuts []int
		for range rng.IntN(8) {
			cuts = append(cuts, rng.IntN(len(data)+1))
		}
		for _, ep := range []Endpoint{ChatCompletions, Responses} {
			wholeOut, wholeRes := filterAll(t, ep, includeUsage, [][]byte{bytes.Clone(data)}, 1<<16)
			cutOut, cutRes := filterAll(t, ep, includeUsage, split(bytes.Clone(data), sortedInts(cuts)), 1+rng.IntN(40))
			if !bytes.Equal(wholeOut, cutOut) || wholeRes != cutRes {
				t.Fatalf("%s: chunking changed the outcome:\n%q %+v\nvs\n%q %+v", ep, cutOut, cutRes, wholeOut, wholeRes)
			}
			if (includeUsage || ep == Responses) && !bytes.Equal(wholeOut, data) {
				t.Fatalf("%s: nothing may be dropped, but output %q differs from input %q", ep, wholeOut, data)
			}
			if len(wholeOut) > len(data) {
				t.Fatalf("output longer than input")
			}
		}
	})
}

// stepReader hands out one chunk per Read and fails the test if it is asked for more
// while the filter still holds an unreturned complete event.
type stepReader struct {
	t       *testing.T
	chunks  []string
	pending *bool // set by the test while it waits for an event
}

func (s *stepReader) Read(p []byte) (int, error) {
	if *s.pending {
		s.t.Fatalf("the filter read more input while holding a complete event")
	}
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	s.chunks = s.chunks[1:]
	*s.pending = true
	return n, nil
}

func (s *stepReader) Close() error { return nil }

// Each complete event comes out of Read at once, even when its final byte is a CR
// whose LF has not arrived yet.
func TestStreamFilterNeverWaitsForACompleteEvent(t *testing.T) {
	for _, chunks := range [][]string{
		{"data: {\"choices\":[]}\n\n", "data: [DONE]\n\n"},
		{"data: a\r\n\r", "\ndata: b\r\n\r", "\n"},
		{"data: a\r\r", "data: b\r\r"},
		{": ping\n\n", "data: x\n\n"},
	} {
		pending := false
		src := &stepReader{t: t, chunks: append([]string(nil), chunks...), pending: &pending}
		f := NewStreamFilter(src, NewResponseMeter(requestFor(t, ChatCompletions, true), wordTokenizer, input))
		var got []string
		buf := make([]byte, 1024)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				pending = false
				got = append(got, string(buf[:n]))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			pending = false // a read that returned nothing may read again
		}
		if strings.Join(got, "") != strings.Join(chunks, "") {
			t.Errorf("forwarded %q, want %q", got, chunks)
		}
	}
}

// An event above 4 MiB is forwarded as it arrives, unmetered, with bounded buffering;
// the events after it are metered as usual.
func TestStreamFilterOversizeEvent(t *testing.T) {
	huge := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + strings.Repeat("x ", 3<<20) + "\"}}]}\n\n"
	tail := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"after it\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n"
	data := []byte(huge + tail)
	var chunks [][]byte
	for i := 0; i < len(data); i += 32 << 10 {
		chunks = append(chunks, data[i:min(i+32<<10, len(data))])
	}
	m := NewResponseMeter(requestFor(t, ChatCompletions, false), wordTokenizer, input)
	f := NewStreamFilter(&chunkReader{chunks: chunks}, m).(*streamFilter)
	out, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	want := huge + strings.Split(tail, "data: {\"choices\":[],")[0] + "data: [DONE]\n\n"
	if string(out) != want {
		t.Errorf("forwarded %d bytes, want %d", len(out), len(want))
	}
	if c := cap(f.buf); c > maxEventSize+3*readSize {
		t.Errorf("buffer grew to %d bytes", c)
	}
	res := m.Result()
	if m.unmetered != 1 || res.Local.Output != 2 || res.Tokens != (Tokens{Input: 5, Output: 6}) || !res.Done {
		t.Errorf("unmetered %d, Result %+v", m.unmetered, res)
	}
}

type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func (e *errReader) Close() error { return nil }

// An upstream read error comes after the events read before it, including a
// partial last one.
func TestStreamFilterUpstreamError(t *testing.T) {
	boom := errors.New("connection reset")
	data := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one two\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" three\"}}]}"
	m := NewResponseMeter(requestFor(t, ChatCompletions, false), wordTokenizer, input)
	out, err := io.ReadAll(NewStreamFilter(&errReader{data: []byte(data), err: boom}, m))
	if !errors.Is(err, boom) {
		t.Errorf("error = %v, want %v", err, boom)
	}
	if string(out) != data {
		t.Errorf("forwarded %q", out)
	}
	if res := m.Result(); res.Done || res.Local.Output != 3 || res.Source != SourceLocal {
		t.Errorf("Result = %+v", res)
	}
}

func TestStreamFilterClose(t *testing.T) {
	src := &chunkReader{}
	f := NewStreamFilter(src, nil)
	if err := f.Close(); err != nil || !src.closed {
		t.Errorf("Close: err %v, closed %v", err, src.closed)
	}
	if n, err := f.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) = %d, %v", n, err)
	}
}

// Events that arrived together leave together: one Read returns every complete event
// already buffered (less a dropped usage chunk), so the proxy writes and flushes once
// per burst; a small buffer still gets them all, over several Reads.
func TestStreamFilterReturnsBufferedEventsTogether(t *testing.T) {
	a := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"}}]}\n\n"
	b := "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" two\"}}]}\n\n"
	usage := "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n"
	done := "data: [DONE]\n\n"
	partial := "data: {\"choi"
	for _, readLen := range []int{4096, len(a) + 3} {
		src := &chunkReader{chunks: [][]byte{[]byte(a + b + usage + done + partial)}}
		f := NewStreamFilter(src, NewResponseMeter(requestFor(t, ChatCompletions, false), wordTokenizer, input))
		buf := make([]byte, readLen)
		var got []string
		for {
			n, err := f.Read(buf)
			if n > 0 {
				got = append(got, string(buf[:n]))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		want := a + b + done + partial
		if strings.Join(got, "") != want {
			t.Fatalf("read %d: forwarded %q, want %q", readLen, strings.Join(got, ""), want)
		}
		if readLen == 4096 && (len(got) != 2 || got[0] != a+b+done) {
			t.Errorf("buffered events came out in %d reads %q, want the three complete ones in the first", len(got), got)
		}
	}
}
