package metering

import (
	"bytes"
	"io"
)

// maxEventSize bounds the bytes buffered for one SSE event; a larger event is passed
// through unmetered as it arrives.
const maxEventSize = 4 << 20

// readSize is the least free space offered to each read from the upstream. The buffer
// starts at 4 × readSize (16 KiB: dozens of typical events) and grows only for an
// event larger than that, so an open stream holds little memory.
const readSize = 4 << 10

// streamFilter is the reader NewStreamFilter returns.
type streamFilter struct {
	src io.ReadCloser
	m   *ResponseMeter

	buf   []byte // buf[start:] is input not yet consumed: the current, incomplete event
	start int
	scan  int // buf[start:scan] has been scanned for the event's end

	// line state of the scan: at the start of a line; the last byte was a CR (so an
	// LF next completes a CRLF rather than ending another line)
	atLineStart, prevCR bool
	// the last event ended at a CR that was the last byte read: an LF arriving next
	// belongs to it, and goes where that event went
	pendingLF, lastForwarded bool
	passthrough              bool // forwarding an oversize event as it arrives
	stopped                  bool // the meter ended the stream at its output cap: nothing more is read

	out  []byte // bytes ready for the reader (a slice of buf)
	err  error  // the upstream's read error, returned once the buffer is drained
	data []byte // scratch for joining multi-line data
}

// NewStreamFilter wraps an upstream SSE body. Reads return the upstream's bytes
// unchanged, event by event, less the events ResponseMeter.Event says to drop (the
// usage chunk the client did not ask for); every event's data is metered by m. A read
// returns as soon as it holds a complete event, never waiting for more input, so the
// proxy can flush event by event; it returns all the complete events already read
// from the upstream (up to the size of the caller's buffer), so a burst of events is
// written and flushed once. Events are delimited by a blank line; lines end in
// LF, CRLF or CR; comment lines and fields other than data pass through; a final
// event without a trailing blank line is metered and forwarded at the end of the
// input. An event larger than 4 MiB is forwarded unmetered as it arrives rather than
// buffered. Close closes src.
//
// Under a limit (ResponseMeter.SetLimit), the filter relays the events the meter
// rewrites instead of the upstream's, and once the meter has ended the stream at
// the output cap it reads the upstream no more: Read then returns io.EOF (the
// caller closing the filter closes the upstream, which stops its generation). An
// event too large to meter ends a limited stream the same way.
func NewStreamFilter(src io.ReadCloser, m *ResponseMeter) io.ReadCloser {
	if m == nil {
		m = NewResponseMeter(nil, nil, Tokens{})
	}
	return &streamFilter{src: src, m: m, atLineStart: true}
}

func (f *streamFilter) Close() error { return f.src.Close() }

func (f *streamFilter) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// Every complete event already buffered goes out in this one Read (as much as p
	// holds): the proxy then writes and flushes once for a burst of events, as a plain
	// reverse proxy would, instead of once per event. The filter never reads the
	// upstream again while it has something to return, so nothing waits.
	n := 0
	for {
		if len(f.out) > 0 {
			c := copy(p[n:], f.out)
			f.out = f.out[c:]
			n += c
			if n == len(p) {
				return n, nil
			}
			continue
		}
		if f.next() {
			continue
		}
		if n > 0 {
			return n, nil
		}
		if f.stopped {
			return 0, io.EOF
		}
		if f.err != nil {
			if f.start < len(f.buf) {
				f.final()
				continue
			}
			return 0, f.err
		}
		f.fill()
	}
}

// next advances over buffered input, setting out to the next bytes to forward. It
// reports false when it needs more input.
func (f *streamFilter) next() bool {
	b := f.buf
	if f.pendingLF && f.scan < len(b) {
		f.pendingLF = false
		if b[f.scan] == '\n' {
			f.scan++
			f.start = f.scan
			if f.lastForwarded {
				f.out = b[f.scan-1 : f.scan]
			}
			return true
		}
	}
	for i := f.scan; i < len(b); i++ {
		c := b[i]
		if c != '\n' && c != '\r' {
			// Jump over the rest of the line.
			f.prevCR, f.atLineStart = false, false
			j := lineEnd(b[i:])
			if j < 0 {
				break
			}
			i += j
			c = b[i]
		}
		// c ends a line, unless it is the LF of a CRLF.
		if c == '\n' && f.prevCR {
			f.prevCR = false
			continue
		}
		f.prevCR = c == '\r'
		if !f.atLineStart {
			f.atLineStart = true
			continue
		}
		// A blank line: the event ends after this terminator (and the LF of a CRLF).
		end := i + 1
		if c == '\r' {
			if end < len(b) {
				if b[end] == '\n' {
					end++
				}
			} else {
				f.pendingLF = true
			}
		}
		f.prevCR, f.atLineStart = false, true
		f.emit(end)
		return true
	}
	f.scan = len(b)
	if f.stopped {
		return false
	}
	if f.passthrough && f.scan > f.start {
		f.out, f.start = b[f.start:f.scan], f.scan
		return true
	}
	if len(b)-f.start > maxEventSize {
		if end, ok := f.m.cutAll(); ok {
			f.out, f.stopped = end, true
			f.start = len(b)
			return true
		}
		f.passthrough = true
		f.m.noteUnmetered()
		f.out, f.start = b[f.start:], len(b)
		return true
	}
	return false
}

// emit ends the event buf[start:end]: metered and forwarded (as it is, or as the
// meter's limit rewrote it) or dropped. After the stream was stopped, nothing is.
func (f *streamFilter) emit(end int) {
	ev := f.buf[f.start:end]
	f.start, f.scan = end, end
	if f.stopped {
		f.lastForwarded = false
		return
	}
	forward := true
	if f.passthrough {
		f.passthrough = false
	} else {
		forward = f.meter(ev)
	}
	f.lastForwarded = forward
	if forward {
		f.out = ev
		if r, ok := f.m.replacement(ev); ok {
			// The replacement ends in its own blank line: an LF still to come for
			// ev's last CR is dropped.
			f.out, f.lastForwarded = r, false
		}
	}
	f.stopped = f.m.stopped()
}

// final ends the input's last event, which had no trailing blank line.
func (f *streamFilter) final() {
	f.pendingLF = false
	f.emit(len(f.buf))
}

// meter passes an event's data, if it has any, to the meter and returns whether to
// forward the event.
func (f *streamFilter) meter(ev []byte) bool {
	var data []byte
	lines := 0
	for len(ev) > 0 {
		var line []byte
		i := lineEnd(ev)
		switch {
		case i < 0:
			line, ev = ev, nil
		case ev[i] == '\r' && i+1 < len(ev) && ev[i+1] == '\n':
			line, ev = ev[:i], ev[i+2:]
		default:
			line, ev = ev[:i], ev[i+1:]
		}
		name, value, hasColon := bytes.Cut(line, []byte(":"))
		if !hasColon {
			value = nil
		}
		if string(name) != "data" {
			continue // comments (empty name), other fields, blank lines
		}
		value = bytes.TrimPrefix(value, []byte(" "))
		switch lines {
		case 0:
			data = value
		case 1:
			f.data = append(append(append(f.data[:0], data...), '\n'), value...)
			data = f.data
		default:
			f.data = append(append(f.data, '\n'), value...)
			data = f.data
		}
		lines++
	}
	if lines == 0 {
		return true
	}
	return f.m.Event(data)
}

// fill reads more input, first moving the current event to the front of the buffer.
func (f *streamFilter) fill() {
	if f.start > 0 {
		n := copy(f.buf, f.buf[f.start:])
		f.buf = f.buf[:n]
		f.scan -= f.start
		f.start = 0
	}
	if cap(f.buf)-len(f.buf) < readSize {
		// Doubling, but never much past maxEventSize: an event that large is passed
		// through, so the buffer stops growing there.
		nb := make([]byte, len(f.buf), max(min(2*cap(f.buf), maxEventSize+2*readSize), len(f.buf)+readSize, 4*readSize))
		copy(nb, f.buf)
		f.buf = nb
	}
	n, err := f.src.Read(f.buf[len(f.buf):cap(f.buf)])
	f.buf = f.buf[:len(f.buf)+n]
	if err != nil {
		f.err = err
	}
}

// lineEnd returns the index of the first CR or LF in b, or -1.
func lineEnd(b []byte) int {
	n := bytes.IndexByte(b, '\n')
	if n < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if r := bytes.IndexByte(b[:n], '\r'); r >= 0 {
		return r
	}
	return n
}
