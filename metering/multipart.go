package metering

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// The multipart reader: what metering needs of a multipart/form-data upload
// (image edits and variations, audio transcriptions and translations) without
// holding the upload. A Multipart is an incremental parser fed the body's bytes
// as they pass on their way to the upstream (Write, or Tee / Peek on a reader):
// it keeps the small fields (the model, n, size, the prompt…), each within a
// size bound, and the first bytes of each file part (its header, for a media
// parser), and counts the rest of a file without keeping it. Its memory is
// bounded by its MultipartLimits whatever the body's size; every problem is a
// *RequestError naming the part at fault.
//
// The parser is stricter than a tolerant multipart reader on purpose: a body
// two parsers could read differently (a delimiter line ending in a bare LF, a
// field given twice) could bill one model while the upstream serves another, so
// it is refused.

// MultipartLimits bound what a Multipart keeps. Zero fields take the defaults.
type MultipartLimits struct {
	// MaxParts caps the parts of the form, fields and files together (default 64).
	MaxParts int
	// MaxFieldBytes caps one field's value (default 128 KiB: a 32,000-character
	// prompt, the longest gpt-image-1 takes, in UTF-8 of up to 4 bytes each).
	MaxFieldBytes int
	// MaxFieldsBytes caps all fields' values together (default 1 MiB).
	MaxFieldsBytes int
	// HeadBytes is how much of each file part's content is kept (default 64 KiB):
	// enough for a media header (WAV, MP3, MP4, OGG, WebM, FLAC, PNG…).
	HeadBytes int
	// MaxHeaderBytes caps one part's header block (default 16 KiB).
	MaxHeaderBytes int
}

// Defaults of MultipartLimits.
const (
	DefaultMultipartParts       = 64
	DefaultMultipartFieldBytes  = 128 << 10
	DefaultMultipartFieldsBytes = 1 << 20
	DefaultMultipartHeadBytes   = 64 << 10
	DefaultMultipartHeaderBytes = 16 << 10
	maxBoundaryLen              = 70 // RFC 2046 §5.1.1
	maxPaddingBytes             = 64 // white space allowed after a delimiter
)

func (l MultipartLimits) withDefaults() MultipartLimits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxParts, DefaultMultipartParts)
	def(&l.MaxFieldBytes, DefaultMultipartFieldBytes)
	def(&l.MaxFieldsBytes, DefaultMultipartFieldsBytes)
	def(&l.HeadBytes, DefaultMultipartHeadBytes)
	def(&l.MaxHeaderBytes, DefaultMultipartHeaderBytes)
	return l
}

// FilePart is one file part of a form: a part whose Content-Disposition names a
// filename.
type FilePart struct {
	Name        string // the form field, e.g. "file", "image", "image[]", "mask"
	Filename    string
	ContentType string // the part's Content-Type, "" when it sent none
	// Head is the first HeadBytes of the file's content (all of it when smaller).
	Head []byte
	// Size is the file's size in bytes so far; final once Complete.
	Size int64
	// Offset is where the file's content begins in the body (0 while it has
	// none): with the body at hand, body[Offset:Offset+Size] is the whole file.
	Offset int64
	// Complete says the part's closing delimiter was seen.
	Complete bool
}

// multipartState is where the parser is in the body.
type multipartState int

const (
	statePreamble  multipartState = iota // before the first delimiter
	stateDelimiter                       // just after a delimiter: "--" (the end) or padding and CRLF
	stateHeaders                         // a part's header block
	stateContent                         // a part's content
	stateClose                           // after the closing delimiter's "--": padding, then CRLF or the end
	stateDone                            // after the closing delimiter: the epilogue, ignored
)

// Multipart parses one multipart/form-data body, fed in pieces. Create it with
// NewMultipart.
type Multipart struct {
	lim MultipartLimits
	// delim is "\n--" + boundary: a delimiter is it preceded by '\r'; it preceded
	// by anything else is a bare-LF delimiter line, refused.
	delim []byte
	state multipartState
	buf   []byte // bytes received and not yet consumed
	err   error  // the first problem; sticky
	read  int64  // bytes fed so far

	parts      int
	fields     map[string]string
	order      []string // field names in the order sent
	fieldBytes int
	files      []FilePart

	// The part being read.
	partStart bool // none of its content is consumed yet
	name      string
	isFile    bool
	value     []byte // a field's value so far
}

// NewMultipart starts a parser for a body of the given Content-Type, which must
// be multipart/form-data with a boundary.
func NewMultipart(contentType string, lim MultipartLimits) (*Multipart, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return nil, &RequestError{Message: "Invalid Content-Type header: this endpoint expects multipart/form-data with a boundary."}
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > maxBoundaryLen || strings.ContainsAny(boundary, "\r\n") {
		return nil, &RequestError{Message: "Invalid Content-Type header: multipart/form-data needs a boundary of 1 to 70 characters."}
	}
	m := &Multipart{lim: lim.withDefaults(), delim: []byte("\n--" + boundary), fields: map[string]string{}}
	// The first delimiter may open the body with no line break before it: parse
	// as if the body began with one.
	m.buf = append(m.buf, '\r', '\n')
	return m, nil
}

// Write feeds the next bytes of the body. It returns the first problem found (a
// *RequestError), then returns it again on every later call.
func (m *Multipart) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	m.read += int64(len(p))
	if m.state == stateDone {
		return len(p), nil // the epilogue
	}
	m.buf = append(m.buf, p...)
	m.err = m.parse()
	if m.err != nil {
		return 0, m.err
	}
	// Keep the unconsumed bytes at the front, so buf stays bounded by one write
	// plus what a step needs to decide (a delimiter, a header block).
	if cap(m.buf) > 64<<10 && len(m.buf) < cap(m.buf)/4 {
		m.buf = append([]byte(nil), m.buf...)
	}
	return len(p), nil
}

// Close says the body ended: a body without its closing delimiter is refused.
func (m *Multipart) Close() error {
	if m.err != nil {
		return m.err
	}
	if m.state == stateClose && len(bytes.Trim(m.buf, " \t")) == 0 {
		m.state = stateDone // the body ends with the closing boundary, no CRLF after it
	}
	if m.state != stateDone {
		m.err = &RequestError{Message: "The multipart body ended before its closing boundary."}
	}
	return m.err
}

// Err is the first problem found so far, nil if none.
func (m *Multipart) Err() error { return m.err }

// Done reports whether the closing delimiter was seen: every field and file is
// then known.
func (m *Multipart) Done() bool { return m.err == nil && m.state == stateDone }

// BytesRead is the number of body bytes fed so far.
func (m *Multipart) BytesRead() int64 { return m.read }

// Field returns the value of the field name, if it was sent.
func (m *Multipart) Field(name string) (string, bool) {
	v, ok := m.fields[name]
	return v, ok
}

// FieldNames are the names of the fields sent, in order.
func (m *Multipart) FieldNames() []string { return m.order }

// Files are the file parts seen so far, in order; the last may still be
// arriving (not Complete).
func (m *Multipart) Files() []FilePart { return m.files }

// File returns the first file part of the given field name.
func (m *Multipart) File(name string) (FilePart, bool) {
	for _, f := range m.files {
		if f.Name == name {
			return f, true
		}
	}
	return FilePart{}, false
}

// parse consumes what it can of buf.
func (m *Multipart) parse() error {
	for {
		var progressed bool
		var err error
		switch m.state {
		case statePreamble, stateContent:
			progressed, err = m.content()
		case stateDelimiter:
			progressed, err = m.afterDelimiter()
		case stateHeaders:
			progressed, err = m.headers()
		case stateClose:
			progressed, err = m.closeLine()
		case stateDone:
			m.buf = m.buf[:0]
			return nil
		}
		if err != nil || !progressed {
			return err
		}
	}
}

// content scans a part's content (or the preamble) for the next delimiter,
// handing over the bytes before it; the last len(delim) bytes wait for more when
// no delimiter is found, as they may begin one.
func (m *Multipart) content() (bool, error) {
	if m.partStart { // "--boundary" straight after the headers: a delimiter to some parsers, content to others
		dash := m.delim[1:]
		if len(m.buf) < len(dash) && bytes.HasPrefix(dash, m.buf) {
			return false, nil
		}
		if bytes.HasPrefix(m.buf, dash) {
			return false, &RequestError{Message: "Invalid multipart body: a part's content begins with its boundary (no CRLF before it), which parsers read differently."}
		}
		m.partStart = false
	}
	i := bytes.Index(m.buf, m.delim)
	if i < 0 {
		keep := len(m.delim) // "\r" + delim minus one byte
		if len(m.buf) <= keep {
			return false, nil
		}
		n := len(m.buf) - keep
		if err := m.take(m.buf[:n]); err != nil {
			return false, err
		}
		m.buf = m.buf[n:]
		return false, nil
	}
	// The byte before a delimiter is always still in buf: what is handed over
	// stops len(delim) bytes short of buf's end.
	if i == 0 || m.buf[i-1] != '\r' {
		return false, &RequestError{Message: "Invalid multipart body: a boundary line is not preceded by CRLF (a bare LF), which parsers read differently."}
	}
	if err := m.take(m.buf[:i-1]); err != nil {
		return false, err
	}
	if m.state == stateContent {
		if err := m.endPart(); err != nil {
			return false, err
		}
	}
	m.buf = m.buf[i+len(m.delim):]
	m.state = stateDelimiter
	return true, nil
}

// take hands content bytes to the part being read (nothing, in the preamble).
func (m *Multipart) take(b []byte) error {
	if m.state != stateContent || len(b) == 0 {
		return nil
	}
	if m.isFile {
		f := &m.files[len(m.files)-1]
		if f.Size == 0 { // b begins buf, whose first byte is body byte read-len(buf)
			f.Offset = m.read - int64(len(m.buf))
		}
		f.Size += int64(len(b))
		if room := m.lim.HeadBytes - len(f.Head); room > 0 {
			f.Head = append(f.Head, b[:min(room, len(b))]...)
		}
		return nil
	}
	if len(m.value)+len(b) > m.lim.MaxFieldBytes {
		return &RequestError{Message: fmt.Sprintf("Invalid multipart field '%s': longer than %d bytes.", m.name, m.lim.MaxFieldBytes), Param: m.name}
	}
	if m.fieldBytes+len(m.value)+len(b) > m.lim.MaxFieldsBytes {
		return &RequestError{Message: fmt.Sprintf("Invalid multipart body: its fields are longer than %d bytes together.", m.lim.MaxFieldsBytes), Param: m.name}
	}
	m.value = append(m.value, b...)
	return nil
}

// endPart closes the part being read at its delimiter.
func (m *Multipart) endPart() error {
	if m.isFile {
		m.files[len(m.files)-1].Complete = true
		return nil
	}
	if !utf8.Valid(m.value) {
		return &RequestError{Message: fmt.Sprintf("Invalid multipart field '%s': its value is not valid UTF-8.", m.name), Param: m.name}
	}
	m.fields[m.name] = string(m.value)
	m.fieldBytes += len(m.value)
	m.value = m.value[:0]
	return nil
}

// afterDelimiter reads what follows a delimiter: "--" ends the body; otherwise
// optional white space and CRLF begin a part.
func (m *Multipart) afterDelimiter() (bool, error) {
	if len(m.buf) < 2 {
		return false, nil
	}
	if m.buf[0] == '-' && m.buf[1] == '-' {
		m.state = stateClose
		m.buf = m.buf[2:]
		return true, nil
	}
	i := 0
	for i < len(m.buf) && (m.buf[i] == ' ' || m.buf[i] == '\t') {
		i++
	}
	if i > maxPaddingBytes {
		return false, &RequestError{Message: "Invalid multipart body: too much white space after a boundary."}
	}
	if len(m.buf) < i+2 {
		return false, nil
	}
	if m.buf[i] != '\r' || m.buf[i+1] != '\n' {
		return false, &RequestError{Message: "Invalid multipart body: a boundary line does not end in CRLF."}
	}
	m.buf = m.buf[i+2:]
	m.parts++
	if m.parts > m.lim.MaxParts {
		return false, &RequestError{Message: fmt.Sprintf("Invalid multipart body: more than %d parts.", m.lim.MaxParts)}
	}
	m.state = stateHeaders
	return true, nil
}

// closeLine reads the rest of the closing delimiter's line: white space, then
// CRLF (the epilogue follows, ignored) or the body's end (Close). Anything else
// could be read by another parser as more parts.
func (m *Multipart) closeLine() (bool, error) {
	i := 0
	for i < len(m.buf) && (m.buf[i] == ' ' || m.buf[i] == '\t') {
		i++
	}
	switch {
	case i > maxPaddingBytes:
		return false, &RequestError{Message: "Invalid multipart body: too much white space after the closing boundary."}
	case len(m.buf) == i || (len(m.buf) == i+1 && m.buf[i] == '\r'):
		return false, nil // more to come, or the end
	case m.buf[i] == '\r' && m.buf[i+1] == '\n':
		m.state = stateDone
		m.buf = m.buf[:0]
		return true, nil
	}
	return false, &RequestError{Message: "Invalid multipart body: the closing boundary line does not end in CRLF."}
}

// headers reads a part's header block, up to the blank line that ends it.
func (m *Multipart) headers() (bool, error) {
	var block []byte
	switch {
	case bytes.HasPrefix(m.buf, []byte("\r\n")):
		block, m.buf = nil, m.buf[2:]
	default:
		i := bytes.Index(m.buf, []byte("\r\n\r\n"))
		if i < 0 {
			if len(m.buf) > m.lim.MaxHeaderBytes {
				return false, &RequestError{Message: fmt.Sprintf("Invalid multipart body: a part's headers are longer than %d bytes, or do not end in a blank line (CRLF CRLF).", m.lim.MaxHeaderBytes)}
			}
			return false, nil
		}
		if i > m.lim.MaxHeaderBytes {
			return false, &RequestError{Message: fmt.Sprintf("Invalid multipart body: a part's headers are longer than %d bytes.", m.lim.MaxHeaderBytes)}
		}
		block, m.buf = m.buf[:i+4], m.buf[i+4:]
		if bareLF(block) {
			return false, &RequestError{Message: "Invalid multipart body: a part's header line ends in a bare LF, which parsers read differently."}
		}
	}
	if err := m.beginPart(block); err != nil {
		return false, err
	}
	m.state, m.partStart = stateContent, true
	return true, nil
}

// bareLF reports whether b has a line feed not preceded by a carriage return.
func bareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// beginPart reads a part's headers: a form-data Content-Disposition with a name,
// and a filename for a file.
func (m *Multipart) beginPart(block []byte) error {
	h := textproto.MIMEHeader{}
	if len(block) > 0 {
		var err error
		h, err = textproto.NewReader(bufio.NewReader(bytes.NewReader(block))).ReadMIMEHeader()
		if err != nil {
			return &RequestError{Message: "Invalid multipart body: a part's headers do not parse."}
		}
	}
	if len(h.Values("Content-Disposition")) != 1 {
		return &RequestError{Message: "Invalid multipart body: each part needs exactly one Content-Disposition header."}
	}
	disposition, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || disposition != "form-data" || params["name"] == "" {
		return &RequestError{Message: "Invalid multipart body: a part's Content-Disposition is not form-data with a name."}
	}
	if cte := h.Get("Content-Transfer-Encoding"); cte != "" && !strings.EqualFold(cte, "binary") && !strings.EqualFold(cte, "8bit") && !strings.EqualFold(cte, "7bit") {
		return &RequestError{Message: "Invalid multipart body: Content-Transfer-Encoding " + cte + " is not supported.", Param: params["name"]}
	}
	m.name = params["name"]
	_, m.isFile = params["filename"]
	if m.isFile {
		m.files = append(m.files, FilePart{Name: m.name, Filename: params["filename"], ContentType: h.Get("Content-Type")})
		return nil
	}
	_, dup := m.fields[m.name]
	if dup && !strings.HasSuffix(m.name, "[]") {
		return &RequestError{Message: fmt.Sprintf("Duplicate field '%s' in the multipart body.", m.name), Param: m.name}
	}
	if dup { // an array field ("timestamp_granularities[]"): its values joined by newlines
		m.value = append(append(m.value[:0], m.fields[m.name]...), '\n')
		m.fieldBytes -= len(m.fields[m.name])
	}
	if !dup {
		m.order = append(m.order, m.name)
	}
	return nil
}

// Tee returns a reader that reads r and feeds m what it reads. At r's end it
// closes m: a read then fails with m's problem, if any, instead of io.EOF, and
// so does any read after m found one — the upstream never gets a body m
// refused as if it were whole.
func (m *Multipart) Tee(r io.Reader) io.Reader { return &multipartTee{m: m, r: r} }

type multipartTee struct {
	m *Multipart
	r io.Reader
}

func (t *multipartTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		if _, werr := t.m.Write(p[:n]); werr != nil {
			return 0, werr
		}
	}
	if err == io.EOF {
		if cerr := t.m.Close(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

// Peek reads body through m until m is Done or at least limit bytes were read,
// and returns the body to forward: the bytes read, then the rest of body, fed
// through m as it is read (Tee). A read error, or a problem m found, is
// returned as it is.
func (m *Multipart) Peek(body io.Reader, limit int) (io.Reader, error) {
	var head []byte
	chunk := make([]byte, 32<<10)
	for !m.Done() && len(head) < limit {
		n, err := body.Read(chunk[:min(len(chunk), limit-len(head))])
		if n > 0 {
			head = append(head, chunk[:n]...)
			if _, werr := m.Write(chunk[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			if cerr := m.Close(); cerr != nil {
				return nil, cerr
			}
			return bytes.NewReader(head), nil
		}
		if err != nil {
			return nil, err
		}
	}
	if m.Done() {
		return io.MultiReader(bytes.NewReader(head), body), nil // the epilogue needs no parsing
	}
	return io.MultiReader(bytes.NewReader(head), m.Tee(body)), nil
}
