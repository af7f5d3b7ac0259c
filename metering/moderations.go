package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// Moderations: POST /v1/moderations classifies text (and, for omni-moderation,
// images). It has no output and its response no usage: it is billed by the local
// count of its input at the model's input price — 0 for OpenAI's moderation
// models, a usage event of zero cost that is still booked and counted.
const Moderations Endpoint = "moderations"

var moderationsEndpoint = endpointSpec{
	name: Moderations, path: "/v1/moderations", parse: (*Request).parseModerations,
	defaultModel: "omni-moderation-latest",
	body:         (*ResponseMeter).plainUsageBody, event: (*ResponseMeter).noEvent,
}

// parseModerations reads the input: a string, an array of strings, or an array of
// omni-moderation parts ({"type":"text","text":…} counted by their text,
// {"type":"image_url",…} as an image of unknown size).
func (r *Request) parseModerations(f *topFields) error {
	b := r.body
	if !f.input.Present() || b[f.input.Start] == 'n' {
		return missingParam("input")
	}
	if b[f.input.Start] != '[' || !firstIsObject(b, f.input.Start) {
		items, err := r.parsePromptLike(f.input, "input")
		if err != nil {
			return err
		}
		if items == 0 {
			return badValue("input", "expected a non-empty string or array, but got an empty array.")
		}
		return nil
	}
	return r.parseItems(f.input.Start, "input", "items", func(r *Request, s, i int) error {
		p := itemParam("input", i)
		if b[s] != '{' {
			return badType(p, "an object", b, s)
		}
		var typ, text jsonscan.Member
		it := jsonscan.Members(b, s)
		for m, ok := it.Next(); ok; m, ok = it.Next() {
			switch {
			case m.Is("type"):
				typ = m
			case m.Is("text"):
				text = m
			}
		}
		kind, err := optionalString(b, typ, p+".type")
		if err != nil {
			return err
		}
		switch kind {
		case "text":
			t, err := optionalString(b, text, p+".text")
			if err != nil {
				return err
			}
			r.texts = append(r.texts, t)
		case "image_url":
			r.fixed += imageDefaultTokens
		default:
			return badValue(p+".type", "expected 'text' or 'image_url', but got %s.", snippet([]byte(kind)))
		}
		return nil
	})
}

// firstIsObject reports whether the array at b[s] begins with an object.
func firstIsObject(b []byte, s int) bool {
	it := jsonscan.Elements(b, s)
	e, _, ok := it.Next()
	return ok && b[e] == '{'
}
