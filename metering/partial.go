package metering

import "unicode/utf8"

// A plain body that broke off (the upstream or the app went away mid-body) is billed
// like a stream cut short: the prompt plus the output relayed, counted locally. The
// relayed part is not JSON, so it is closed first: cut back to the last point where
// closing the open strings, arrays and objects gives a document, and metered as a
// body. Its usage, if one was relayed, is not read: the response never completed.

// PartialBody meters prefix, the part of a plain 2xx body relayed before it broke
// off: its output text counts locally (Result then reports Done false, and the
// local count as the source).
func (m *ResponseMeter) PartialBody(prefix []byte) {
	doc := closeTruncated(prefix)
	if doc == nil {
		return
	}
	usage, hasUsage := m.usage, m.hasUsage
	m.Body(doc)
	m.usage, m.hasUsage, m.done = usage, hasUsage, false
}

// closeTruncated returns the JSON text b broke off from, cut back and closed: b up
// to the end of its last complete value (or inside its last string value, at a
// character boundary), then what closes that string and the arrays and objects
// open there. It returns nil when b holds no complete value, or is malformed in a
// way the scan sees (more closing than opening brackets).
func closeTruncated(b []byte) []byte {
	var stack []byte // the closing bracket of each open container
	safe, safeDepth := -1, 0
	inString, inKey, expectKey := false, false, false
	stringAt, charEnd := 0, 0 // the open string's quote; the end of its last whole character
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case c == '"':
				inString = false
				if !inKey {
					safe, safeDepth = i+1, len(stack)
				}
				continue
			case c == '\\':
				n := 2
				if i+1 < len(b) && b[i+1] == 'u' {
					n = 6
				}
				if i+n > len(b) {
					return closeAt(b, stack, inString && !inKey, stringAt, charEnd, safe, safeDepth)
				}
				i += n - 1
			case c >= utf8.RuneSelf:
				n := 1
				switch {
				case c >= 0xF0:
					n = 4
				case c >= 0xE0:
					n = 3
				case c >= 0xC0:
					n = 2
				}
				if i+n > len(b) {
					return closeAt(b, stack, inString && !inKey, stringAt, charEnd, safe, safeDepth)
				}
				i += n - 1
			}
			charEnd = i + 1
			continue
		}
		switch c {
		case '{', '[':
			if c == '{' {
				stack = append(stack, '}')
			} else {
				stack = append(stack, ']')
			}
			expectKey = c == '{'
			safe, safeDepth = i+1, len(stack)
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			expectKey = false
			safe, safeDepth = i+1, len(stack)
		case '"':
			inString, inKey = true, expectKey && len(stack) > 0 && stack[len(stack)-1] == '}'
			stringAt, charEnd = i, i+1
		case ':':
			expectKey = false
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1] == '}'
		case ' ', '\t', '\n', '\r':
		default: // a number or a literal: complete only if something follows it
			j := i
			for j < len(b) && !isDelimiter(b[j]) {
				j++
			}
			if j == len(b) {
				return closeAt(b, stack, false, 0, 0, safe, safeDepth)
			}
			safe, safeDepth = j, len(stack)
			i = j - 1
		}
	}
	return closeAt(b, stack, inString && !inKey, stringAt, charEnd, safe, safeDepth)
}

// closeAt closes b: inside its open string value (cut at charEnd) when there is
// one, else at the last safe point, where safeDepth containers of stack were open.
func closeAt(b, stack []byte, inValue bool, stringAt, charEnd, safe, safeDepth int) []byte {
	if inValue && charEnd > stringAt {
		out := make([]byte, 0, charEnd+1+len(stack))
		out = append(append(out, b[:charEnd]...), '"')
		return appendClosers(out, stack)
	}
	if safe < 0 {
		return nil
	}
	out := make([]byte, 0, safe+safeDepth)
	return appendClosers(append(out, b[:safe]...), stack[:safeDepth])
}

func appendClosers(out, stack []byte) []byte {
	for i := len(stack) - 1; i >= 0; i-- {
		out = append(out, stack[i])
	}
	return out
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
		return true
	}
	return false
}
