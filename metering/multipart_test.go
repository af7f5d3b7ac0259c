package metering

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"strings"
	"testing"
)

const testBoundary = "XyZzY-boundary"

// form builds a multipart/form-data body with CRLF line breaks: each part is
// "headers\r\n\r\ncontent" (headers without the trailing blank line).
func form(parts ...string) []byte {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + testBoundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + testBoundary + "--\r\n")
	return []byte(b.String())
}

func field(name, value string) string {
	return `Content-Disposition: form-data; name="` + name + "\"\r\n\r\n" + value
}

func file(name, filename, contentType, content string) string {
	return `Content-Disposition: form-data; name="` + name + `"; filename="` + filename + "\"\r\nContent-Type: " + contentType + "\r\n\r\n" + content
}

const testContentType = "multipart/form-data; boundary=" + testBoundary

// parseAll feeds body to a new parser in pieces of size step (0: at once).
func parseAll(t *testing.T, body []byte, lim MultipartLimits, step int) (*Multipart, error) {
	t.Helper()
	m, err := NewMultipart(testContentType, lim)
	if err != nil {
		t.Fatalf("NewMultipart: %v", err)
	}
	if step <= 0 {
		step = len(body) + 1
	}
	for len(body) > 0 {
		n := min(step, len(body))
		if _, err := m.Write(body[:n]); err != nil {
			return m, err
		}
		body = body[n:]
	}
	return m, m.Close()
}

func TestMultipartReadsFieldsAndFileHeads(t *testing.T) {
	big := strings.Repeat("RIFF", 40_000) // 160 KB: beyond the 64 KiB head
	tests := []struct {
		name     string
		body     []byte
		fields   map[string]string
		files    []FilePart // Head compared by length and prefix
		headSize int
	}{
		{
			name:   "fields only",
			body:   form(field("model", "dall-e-2"), field("n", "2"), field("prompt", "a cat\r\non two lines")),
			fields: map[string]string{"model": "dall-e-2", "n": "2", "prompt": "a cat\r\non two lines"},
		},
		{
			name:   "file before the fields (the Go SDK's order)",
			body:   form(file("image", "a.png", "image/png", "\x89PNG\r\n\x1a\nDATA"), field("model", "gpt-image-1"), field("size", "1024x1024")),
			fields: map[string]string{"model": "gpt-image-1", "size": "1024x1024"},
			files:  []FilePart{{Name: "image", Filename: "a.png", ContentType: "image/png", Head: []byte("\x89PNG\r\n\x1a\nDATA"), Size: 12, Complete: true}},
		},
		{
			name:   "a large file keeps only its head, and counts the rest",
			body:   form(file("file", "a.wav", "audio/wav", big), field("model", "whisper-1")),
			fields: map[string]string{"model": "whisper-1"},
			files:  []FilePart{{Name: "file", Filename: "a.wav", ContentType: "audio/wav", Head: []byte(big[:DefaultMultipartHeadBytes]), Size: int64(len(big)), Complete: true}},
		},
		{
			name:   "array fields are joined by newlines",
			body:   form(field("timestamp_granularities[]", "word"), field("timestamp_granularities[]", "segment")),
			fields: map[string]string{"timestamp_granularities[]": "word\nsegment"},
		},
		{
			name:   "several files, one an image array",
			body:   form(file("image[]", "a.png", "image/png", "A"), file("image[]", "b.png", "image/png", "BB"), file("mask", "m.png", "", "")),
			fields: map[string]string{},
			files: []FilePart{
				{Name: "image[]", Filename: "a.png", ContentType: "image/png", Head: []byte("A"), Size: 1, Complete: true},
				{Name: "image[]", Filename: "b.png", ContentType: "image/png", Head: []byte("BB"), Size: 2, Complete: true},
				{Name: "mask", Filename: "m.png", Size: 0, Complete: true},
			},
		},
		{
			name:   "content holding the boundary mid-line is content",
			body:   form(field("prompt", "x--"+testBoundary+" y\r\n-"+testBoundary)),
			fields: map[string]string{"prompt": "x--" + testBoundary + " y\r\n-" + testBoundary},
		},
		{
			name:   "preamble and epilogue are ignored; padding after a delimiter is allowed",
			body:   []byte("preamble\r\n--" + testBoundary + " \t\r\n" + field("model", "m") + "\r\n--" + testBoundary + "--\r\nepilogue"),
			fields: map[string]string{"model": "m"},
		},
		{
			name:   "RFC 2231 encoded names",
			body:   form("Content-Disposition: form-data; name*=utf-8''mod%65l\r\n\r\nm"),
			fields: map[string]string{"model": "m"},
		},
		{
			name:   "an empty form",
			body:   []byte("--" + testBoundary + "--"),
			fields: map[string]string{},
		},
	}
	for _, tc := range tests {
		for _, step := range []int{0, 1, 7, 4096} {
			m, err := parseAll(t, tc.body, MultipartLimits{}, step)
			if err != nil {
				t.Fatalf("%s (step %d): %v", tc.name, step, err)
			}
			if !m.Done() {
				t.Fatalf("%s (step %d): not Done", tc.name, step)
			}
			if len(m.FieldNames()) != len(tc.fields) {
				t.Fatalf("%s (step %d): fields %v, want %v", tc.name, step, m.FieldNames(), tc.fields)
			}
			for k, want := range tc.fields {
				if got, ok := m.Field(k); !ok || got != want {
					t.Fatalf("%s (step %d): field %q = %q, %v; want %q", tc.name, step, k, got, ok, want)
				}
			}
			files := m.Files()
			if len(files) != len(tc.files) {
				t.Fatalf("%s (step %d): %d files, want %d", tc.name, step, len(files), len(tc.files))
			}
			for i, want := range tc.files {
				got := files[i]
				if got.Name != want.Name || got.Filename != want.Filename || got.ContentType != want.ContentType ||
					got.Size != want.Size || got.Complete != want.Complete || !bytes.Equal(got.Head, want.Head) {
					t.Fatalf("%s (step %d): file %d = %+v (head %d bytes), want %+v", tc.name, step, i,
						FilePart{Name: got.Name, Filename: got.Filename, ContentType: got.ContentType, Size: got.Size, Complete: got.Complete}, len(got.Head), want)
				}
			}
		}
	}
}

func TestMultipartRefusesBadBodies(t *testing.T) {
	lim := MultipartLimits{MaxParts: 3, MaxFieldBytes: 10, MaxFieldsBytes: 15, MaxHeaderBytes: 200}
	tests := []struct {
		name  string
		body  []byte
		param string
		word  string
	}{
		{name: "no closing boundary", body: []byte("--" + testBoundary + "\r\n" + field("model", "m")), word: "ended"},
		{name: "no boundary at all", body: []byte(`{"model":"m"}`), word: "ended"},
		{name: "a bare LF delimiter", body: []byte("--" + testBoundary + "\r\n" + field("model", "m") + "\n--" + testBoundary + "--"), word: "bare LF"},
		{name: "a bare LF delimiter in the preamble", body: []byte("x\n--" + testBoundary + "\r\n" + field("model", "m") + "\r\n--" + testBoundary + "--"), word: "bare LF"},
		{name: "duplicate field", body: form(field("model", "a"), field("model", "b")), param: "model", word: "Duplicate"},
		{name: "field too long", body: form(field("prompt", strings.Repeat("x", 11))), param: "prompt", word: "longer than 10"},
		{name: "fields too long together", body: form(field("a", "1234567890"), field("b", "123456")), param: "b", word: "together"},
		{name: "too many parts", body: form(field("a", ""), field("b", ""), field("c", ""), field("d", "")), word: "more than 3 parts"},
		{name: "headers too long", body: form("Content-Disposition: form-data; name=\"a\"\r\nX-Pad: " + strings.Repeat("p", 300) + "\r\n\r\nv"), word: "headers"},
		{name: "no Content-Disposition", body: form("Content-Type: text/plain\r\n\r\nv"), word: "Content-Disposition"},
		{name: "two Content-Dispositions", body: form("Content-Disposition: form-data; name=\"a\"\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\nv"), word: "exactly one"},
		{name: "not form-data", body: form("Content-Disposition: attachment; name=\"a\"\r\n\r\nv"), word: "form-data"},
		{name: "no name", body: form("Content-Disposition: form-data\r\n\r\nv"), word: "name"},
		{name: "transfer encoding", body: form("Content-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: base64\r\n\r\ndg=="), param: "a", word: "base64"},
		{name: "field not UTF-8", body: form(field("model", "\xff")), param: "model", word: "UTF-8"},
		{name: "a header line ending in a bare LF", body: form("Content-Disposition: form-data; name=\"a\"\n\r\n\r\nv"), word: "bare LF"},
		{name: "content beginning with the boundary", body: []byte("--" + testBoundary + "\r\n" + field("a", "--"+testBoundary+"\r\n") + "\r\n--" + testBoundary + "--"), word: "begins with its boundary"},
		{name: "garbage after the closing boundary", body: []byte("--" + testBoundary + "--\n--" + testBoundary + "\r\n" + field("a", "") + "\r\n--" + testBoundary + "--"), word: "closing boundary line"},
		{name: "delimiter line not ending in CRLF", body: []byte("--" + testBoundary + "x\r\n" + field("a", "") + "\r\n--" + testBoundary + "--"), word: "CRLF"},
	}
	for _, tc := range tests {
		for _, step := range []int{0, 1, 5} {
			_, err := parseAll(t, tc.body, lim, step)
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("%s (step %d): error %v, want a *RequestError", tc.name, step, err)
			}
			if re.Param != tc.param || !strings.Contains(re.Message, tc.word) {
				t.Fatalf("%s (step %d): %q (param %q), want %q naming %q", tc.name, step, re.Message, re.Param, tc.word, tc.param)
			}
		}
	}
}

func TestNewMultipartRefusesContentTypes(t *testing.T) {
	for _, ct := range []string{"", "application/json", "multipart/form-data", "multipart/mixed; boundary=x",
		"multipart/form-data; boundary=" + strings.Repeat("b", 71), "multipart/form-data; boundary=\"a\r\nb\""} {
		if _, err := NewMultipart(ct, MultipartLimits{}); err == nil {
			t.Errorf("NewMultipart(%q) accepted", ct)
		}
	}
	if _, err := NewMultipart(`multipart/form-data; boundary="quoted boundary"`, MultipartLimits{}); err != nil {
		t.Errorf("a quoted boundary: %v", err)
	}
}

// oneByteReader returns one byte per Read, the way a trickled upload arrives.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

// Peek reads only as far as it must, and the body it returns is the whole body,
// byte for byte, whatever was read ahead.
func TestMultipartPeekForwardsTheBodyUnchanged(t *testing.T) {
	big := strings.Repeat("0123456789", 50_000) // 500 KB
	body := form(file("file", "a.mp3", "audio/mpeg", big), field("model", "whisper-1"))
	tests := []struct {
		name     string
		limit    int
		wantDone bool
	}{
		{name: "read ahead past the file", limit: len(body) + 10, wantDone: true},
		{name: "read ahead stops in the file", limit: 100 << 10, wantDone: false},
		{name: "no read ahead", limit: 0, wantDone: false},
	}
	for _, tc := range tests {
		for _, trickle := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(body)
			if trickle {
				src = oneByteReader{src}
			}
			m, _ := NewMultipart(testContentType, MultipartLimits{})
			fwd, err := m.Peek(src, tc.limit)
			if err != nil {
				t.Fatalf("%s: Peek: %v", tc.name, err)
			}
			if m.Done() != tc.wantDone {
				t.Fatalf("%s: Done = %v after Peek, want %v", tc.name, m.Done(), tc.wantDone)
			}
			if read := m.BytesRead(); read > int64(max(tc.limit, 0)) {
				t.Fatalf("%s: read %d bytes ahead, limit %d", tc.name, read, tc.limit)
			}
			got, err := io.ReadAll(fwd)
			if err != nil {
				t.Fatalf("%s: forwarding: %v", tc.name, err)
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("%s: forwarded %d bytes, not the body's %d", tc.name, len(got), len(body))
			}
			if model, _ := m.Field("model"); !m.Done() || model != "whisper-1" {
				t.Fatalf("%s: after forwarding, Done %v, model %q", tc.name, m.Done(), model)
			}
			if f, _ := m.File("file"); f.Size != int64(len(big)) || len(f.Head) != DefaultMultipartHeadBytes {
				t.Fatalf("%s: file size %d head %d", tc.name, f.Size, len(f.Head))
			}
		}
	}
}

// A body the parser refuses mid-way is not forwarded as if it were whole: the
// forwarding reader fails.
func TestMultipartTeeFailsABadBody(t *testing.T) {
	body := form(file("file", "a.mp3", "audio/mpeg", strings.Repeat("x", 200<<10)), field("model", "a"), field("model", "b"))
	m, _ := NewMultipart(testContentType, MultipartLimits{})
	fwd, err := m.Peek(bytes.NewReader(body), 1024)
	if err != nil {
		t.Fatalf("Peek: %v", err)
	}
	_, err = io.ReadAll(fwd)
	var re *RequestError
	if !errors.As(err, &re) || re.Param != "model" {
		t.Fatalf("forwarding a body with a duplicate field: %v", err)
	}
	truncated := body[:len(body)-10]
	m, _ = NewMultipart(testContentType, MultipartLimits{})
	fwd, _ = m.Peek(bytes.NewReader(truncated), 1024)
	if _, err := io.ReadAll(fwd); err == nil {
		t.Fatal("forwarding a truncated body succeeded")
	}
}

// The parser agrees with the standard library on what the standard library also
// accepts, whatever the pieces the body arrives in.
func TestMultipartAgreesWithMimeMultipart(t *testing.T) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.SetBoundary(testBoundary)
	_ = w.WriteField("model", "gpt-image-1")
	fw, _ := w.CreateFormFile("image", "a b\".png")
	_, _ = fw.Write(bytes.Repeat([]byte{0, '\r', '\n', '-', '-'}, 30_000))
	_ = w.WriteField("prompt", "émoji 🐈")
	_ = w.Close()
	checkAgainstStdlib(t, buf.Bytes(), 13)
}

// checkAgainstStdlib parses body with mime/multipart; when it succeeds and the
// parser does too, both must see the same parts.
func checkAgainstStdlib(t *testing.T, body []byte, step int) {
	t.Helper()
	m, err := parseAll(t, body, MultipartLimits{}, step)
	if err != nil {
		return
	}
	r := multipart.NewReader(bytes.NewReader(body), testBoundary)
	fields := map[string]string{}
	var files []FilePart
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return // the standard library refuses what the parser took: no comparison
		}
		content, err := io.ReadAll(p)
		if err != nil {
			return
		}
		if p.FileName() != "" || strings.Contains(p.Header.Get("Content-Disposition"), "filename") {
			files = append(files, FilePart{Name: p.FormName(), Size: int64(len(content)), Head: content[:min(len(content), DefaultMultipartHeadBytes)]})
			continue
		}
		if prev, ok := fields[p.FormName()]; ok {
			content = append([]byte(prev+"\n"), content...)
		}
		fields[p.FormName()] = string(content)
	}
	if len(fields) != len(m.FieldNames()) {
		t.Fatalf("fields: stdlib %v, parser %v", fields, m.FieldNames())
	}
	for k, v := range fields {
		if got, _ := m.Field(k); got != v {
			t.Fatalf("field %q: stdlib %q, parser %q", k, v, got)
		}
	}
	if len(files) != len(m.Files()) {
		t.Fatalf("files: stdlib %d, parser %d", len(files), len(m.Files()))
	}
	for i, f := range files {
		g := m.Files()[i]
		if g.Name != f.Name || g.Size != f.Size || !bytes.Equal(g.Head, f.Head) {
			t.Fatalf("file %d: stdlib %q %d bytes, parser %q %d bytes", i, f.Name, f.Size, g.Name, g.Size)
		}
	}
}
