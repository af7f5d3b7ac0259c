package metering

import (
	"strings"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Tool and legacy function definitions (chat and Responses), counted by the
// cookbook's formula.

// The tool-definition overheads of OpenAI's cookbook ("How to count tokens with
// tiktoken", section 7): per function 7 tokens (o200k models) or 10 (cl100k), 3 to
// open the properties, 3 per property, -3 for an enum plus 3 per enum item, and 12 to
// close the list.
const (
	funcInitO200k = 7
	funcInitCL100 = 10
	propInit      = 3
	propKey       = 3
	enumInit      = -3
	enumItem      = 3
	funcEnd       = 12
)

// parseTools collects the tool (and legacy function) definitions by the cookbook's
// formula.
func (r *Request) parseTools(f *topFields) error {
	b := r.body
	funcs := r.funcs
	for _, list := range [...]struct {
		m    *jsonscan.Member
		name string
	}{{&f.tools, "tools"}, {&f.functions, "functions"}} {
		if !list.m.Present() || b[list.m.Start] == 'n' {
			continue
		}
		if b[list.m.Start] != '[' {
			return badType(list.name, "an array", b, list.m.Start)
		}
		i := 0
		it := jsonscan.Elements(b, list.m.Start)
		for ts, _, ok := it.Next(); ok; ts, _, ok = it.Next() {
			if b[ts] != '{' {
				return badType(itemParam(list.name, i), "an object", b, ts)
			}
			i++
			if i > maxItems {
				return badValue(list.name, "more than %d tools.", maxItems)
			}
			def, isFunc := ts, list.name == "functions"
			tt := jsonscan.Members(b, ts)
			for m, ok := tt.Next(); ok; m, ok = tt.Next() {
				switch {
				case m.Is("function") && b[m.Start] == '{':
					def, isFunc = m.Start, true
				case m.Is("type"):
					if t, _ := jsonscan.TextAt(b, m.Start, m.End); t == "function" {
						isFunc = true
					}
				}
			}
			if isFunc {
				r.collectFunction(def)
			}
		}
	}
	if r.funcs > funcs {
		r.fixed += funcEnd
	}
	return nil
}

// collectFunction counts one function definition: "name:description", then each
// property as "key:type:description" plus its enum items. Nested object properties
// are counted the same way (an extension of the cookbook's flat formula).
func (r *Request) collectFunction(s int) {
	b := r.body
	r.funcs++
	var name, desc string
	params := -1
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		switch {
		case m.Is("name"):
			name, _ = jsonscan.TextAt(b, m.Start, m.End)
		case m.Is("description"):
			desc, _ = jsonscan.TextAt(b, m.Start, m.End)
		case m.Is("parameters") && b[m.Start] == '{':
			params = m.Start
		}
	}
	r.texts = append(r.texts, name+":"+strings.TrimSuffix(desc, "."))
	if params >= 0 {
		r.collectProperties(params)
	}
}

// collectProperties counts the "properties" of the schema object at b[s].
func (r *Request) collectProperties(s int) {
	b := r.body
	props := -1
	it := jsonscan.Members(b, s)
	for m, ok := it.Next(); ok; m, ok = it.Next() {
		if m.Is("properties") && b[m.Start] == '{' {
			props = m.Start
		}
	}
	if props < 0 {
		return
	}
	pt := jsonscan.Members(b, props)
	first := true
	for p, ok := pt.Next(); ok; p, ok = pt.Next() {
		if first {
			r.fixed += propInit
			first = false
		}
		r.fixed += propKey
		var typ, desc string
		it := jsonscan.Members(b, p.Start)
		for m, ok := it.Next(); ok; m, ok = it.Next() {
			switch {
			case m.Is("type"):
				if t, ok := jsonscan.TextAt(b, m.Start, m.End); ok {
					typ = t
				} else {
					typ = string(b[m.Start:m.End])
				}
			case m.Is("description"):
				desc, _ = jsonscan.TextAt(b, m.Start, m.End)
			case m.Is("enum") && b[m.Start] == '[':
				r.fixed += enumInit
				et := jsonscan.Elements(b, m.Start)
				for es, ee, ok := et.Next(); ok; es, ee, ok = et.Next() {
					r.fixed += enumItem
					if t, ok := jsonscan.TextAt(b, es, ee); ok {
						r.texts = append(r.texts, t)
					} else {
						r.texts = append(r.texts, string(b[es:ee]))
					}
				}
			case m.Is("properties") && b[m.Start] == '{':
				r.collectProperties(p.Start)
			case m.Is("items") && b[m.Start] == '{':
				r.collectProperties(m.Start)
			}
		}
		r.texts = append(r.texts, p.Name()+":"+typ+":"+strings.TrimSuffix(desc, "."))
	}
}
