package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// A one-pass reader for the usual chat and completions chunk: it validates the
// document as jsonscan.Check does and, in the same pass, notes where the members
// the meter reads are, then applies them as chunk() would. The general path
// (jsonscan.Check, then the walkers of response.go) reads each nested byte three to
// five times; this one reads it once, which is most of the metering cost of a
// streamed answer (one chunk per token).
//
// It covers what upstreams send token by token: an object whose "choices" hold
// objects with "index", "finish_reason", "text" and one "delta" (or "message")
// holding text members. Anything else — a key with escapes, a second "delta", tool
// calls, more choices or members than it has room for, or invalid JSON — makes it
// give up before it changed anything, and the caller takes the general path, which
// stays the reference (TestFastChunkMatchesGeneralPath, FuzzFastChunk).

// Room for what one chunk may carry; more gives up.
const (
	fastMaxOps      = 4   // top-level usage/choices/error members
	fastMaxChoices  = 4   // elements of one "choices"
	fastMaxFinishes = 2   // "finish_reason" members of one choice
	fastMaxTexts    = 4   // text members of one delta or message
	fastDepth       = 511 // jsonscan.CheckValue's depth for a top-level member (maxBodyDepth − 1)
)

// Kinds of fastOp.
const (
	fastUsage = iota
	fastChoices
	fastError
)

type fastOp struct {
	kind       int
	start, end int // fastUsage: the object's offsets
	first, n   int // fastChoices: its choices in fastScan.choices
}

// span is a value's offsets in the document; the scan keeps its records small,
// since they are cleared for every chunk.
type span struct{ start, end int32 }

func (s span) member() jsonscan.Member { return jsonscan.Member{Start: int(s.start), End: int(s.end)} }

type fastText struct {
	part int32
	v    span
}

type fastChoice struct {
	object, msg bool // msg: a delta (stream) or message (plain body) object was found
	nFinishes   int8
	nTexts      int8
	index       int64
	finishes    [fastMaxFinishes]span
	text        span // "text" (completions); the last one wins, as in choice()
	texts       [fastMaxTexts]fastText
}

type fastScan struct {
	b        []byte
	stream   bool
	ops      [fastMaxOps]fastOp
	nOps     int
	choices  [fastMaxChoices]fastChoice
	nChoices int
}

// fastChunk meters b (a chunk, or a plain body when stream is false) if it has the
// usual shape, reporting whether it did and whether the chunk is usage-only. When
// handled is false nothing was changed.
func (m *ResponseMeter) fastChunk(b []byte, stream bool) (usageOnly, handled bool) {
	if len(b) > 1<<30 {
		return false, false // offsets are kept in int32
	}
	var sc fastScan
	sc.b, sc.stream = b, stream
	if !sc.scan() {
		return false, false
	}
	emptyChoices, hasUsage := false, false
	for _, op := range sc.ops[:sc.nOps] {
		switch op.kind {
		case fastUsage:
			hasUsage = true
			m.readUsage(b, op.start, op.end)
		case fastChoices:
			for i := range sc.choices[op.first : op.first+op.n] {
				m.applyChoice(b, &sc.choices[op.first+i])
			}
			emptyChoices = op.n == 0
		case fastError:
			m.status = "error"
		}
	}
	return emptyChoices && hasUsage, true
}

// applyChoice has the effects choice() has for c.
func (m *ResponseMeter) applyChoice(b []byte, c *fastChoice) {
	if !c.object {
		return
	}
	if m.lim != nil {
		m.lim.noteChoice(c.index)
	}
	for _, f := range c.finishes[:c.nFinishes] {
		if r, ok := jsonscan.StringAt(b, int(f.start), int(f.end)); ok && r != "" {
			m.finish(r)
		}
		if m.lim != nil {
			m.lim.noteFinish(c.index, int(f.start), int(f.end))
		}
	}
	if c.text.end > c.text.start {
		m.appendString(c.index, partContent, b, c.text.member())
	}
	if !c.msg {
		return
	}
	for _, t := range c.texts[:c.nTexts] {
		m.appendString(c.index, int64(t.part), b, t.v.member())
	}
}

// scan validates the whole document and records what fastChunk applies; false
// gives up (not the usual shape, or not valid JSON).
func (sc *fastScan) scan() bool {
	b := sc.b
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, ok := sc.object(i, fastDepth, sc.topMember)
	return ok && jsonscan.SkipSpace(b, end) == len(b)
}

// object walks the object at b[i], checking its syntax as jsonscan.Check does, and
// hands each member to f, which returns the value's end (or false to give up).
// depth is jsonscan.CheckValue's depth for the member values.
func (sc *fastScan) object(i, depth int, f func(key []byte, v, depth int) (int, bool)) (int, bool) {
	b := sc.b
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		keyEnd, err := jsonscan.CheckString(b, i)
		if err != nil {
			return i, false
		}
		key := b[i+1 : keyEnd-1]
		for _, c := range key {
			if c == '\\' {
				return i, false // an escaped key: Member.Is would unescape it
			}
		}
		if i = jsonscan.SkipSpace(b, keyEnd); i >= len(b) || b[i] != ':' {
			return i, false
		}
		var ok, more bool
		if i, ok = f(key, jsonscan.SkipSpace(b, i+1), depth); !ok {
			return i, false
		}
		if i, more, ok = separator(b, i, '}'); !more {
			return i, ok
		}
	}
}

// separator reads what follows a member or element that ends at b[i]: a comma (more:
// i is then the next one's start) or close (i is then past the object or array);
// anything else gives up.
func separator(b []byte, i int, close byte) (next int, more, ok bool) {
	if i = jsonscan.SkipSpace(b, i); i >= len(b) {
		return i, false, false
	}
	switch b[i] {
	case ',':
		return jsonscan.SkipSpace(b, i+1), true, true
	case close:
		return i + 1, false, true
	}
	return i, false, false
}

// skip checks a value the meter does not read.
func (sc *fastScan) skip(v, depth int) (int, bool) {
	end, err := jsonscan.CheckValue(sc.b, v, depth)
	return end, err == nil
}

// topMember handles a member of the chunk object.
func (sc *fastScan) topMember(key []byte, v, depth int) (int, bool) {
	b := sc.b
	if v >= len(b) {
		return v, false
	}
	switch string(key) {
	case "usage":
		end, ok := sc.skip(v, depth)
		if ok && b[v] == '{' {
			ok = sc.op(fastOp{kind: fastUsage, start: v, end: end})
		}
		return end, ok
	case "error":
		end, ok := sc.skip(v, depth)
		if ok && b[v] == '{' {
			ok = sc.op(fastOp{kind: fastError})
		}
		return end, ok
	case "choices":
		if b[v] != '[' {
			return sc.skip(v, depth)
		}
		return sc.choiceArray(v, depth-1)
	}
	return sc.skip(v, depth)
}

func (sc *fastScan) op(o fastOp) bool {
	if sc.nOps == fastMaxOps {
		return false
	}
	sc.ops[sc.nOps] = o
	sc.nOps++
	return true
}

// choiceArray walks the "choices" array at b[i]; depth is for its elements.
func (sc *fastScan) choiceArray(i, depth int) (int, bool) {
	b := sc.b
	op := fastOp{kind: fastChoices, first: sc.nChoices}
	i = jsonscan.SkipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, sc.op(op)
	}
	for {
		if i >= len(b) {
			return i, false
		}
		if sc.nChoices == fastMaxChoices {
			return i, false
		}
		c := &sc.choices[sc.nChoices]
		sc.nChoices++
		op.n++
		var ok bool
		if b[i] == '{' {
			c.object = true
			i, ok = sc.object(i, depth-1, func(key []byte, v, depth int) (int, bool) { return sc.choiceMember(c, key, v, depth) })
		} else {
			i, ok = sc.skip(i, depth)
		}
		if !ok {
			return i, false
		}
		var more bool
		if i, more, ok = separator(b, i, ']'); !more {
			return i, ok && sc.op(op)
		}
	}
}

// choiceMember handles a member of a choice.
func (sc *fastScan) choiceMember(c *fastChoice, key []byte, v, depth int) (int, bool) {
	b := sc.b
	end, ok := 0, false
	switch k := string(key); {
	case k == "index":
		if end, ok = sc.skip(v, depth); ok {
			if n, res := jsonscan.IntAt(b, v, end); res == jsonscan.IntOK {
				c.index = n
			}
		}
	case k == "finish_reason":
		if end, ok = sc.skip(v, depth); ok {
			if c.nFinishes == fastMaxFinishes {
				return end, false
			}
			c.finishes[c.nFinishes] = span{int32(v), int32(end)}
			c.nFinishes++
		}
	case k == "text":
		if end, ok = sc.skip(v, depth); ok {
			c.text = span{int32(v), int32(end)}
		}
	case (sc.stream && k == "delta") || (!sc.stream && k == "message"):
		if c.msg || v >= len(b) || b[v] != '{' {
			return v, false // a second one, or not an object: the general path decides
		}
		c.msg = true
		end, ok = sc.object(v, depth-1, func(key []byte, v, depth int) (int, bool) { return sc.textMember(c, key, v, depth) })
	default:
		end, ok = sc.skip(v, depth)
	}
	return end, ok
}

// textMember handles a member of a delta or message.
func (sc *fastScan) textMember(c *fastChoice, key []byte, v, depth int) (int, bool) {
	part := int32(-1)
	switch string(key) {
	case "content":
		part = partContent
	case "refusal":
		part = partRefusal
	case "reasoning_content", "reasoning":
		part = partReasoning
	case "function_call", "tool_calls":
		return v, false // tool calls take the general path
	}
	end, ok := sc.skip(v, depth)
	if !ok || part < 0 {
		return end, ok
	}
	if c.nTexts == fastMaxTexts {
		return end, false
	}
	c.texts[c.nTexts] = fastText{part: part, v: span{int32(v), int32(end)}}
	c.nTexts++
	return end, true
}
