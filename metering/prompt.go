package metering

import "github.com/creditgate/creditgate/metering/internal/jsonscan"

// The endpoints that take a prompt as a string, strings or token ids: legacy
// completions (text out, streamed as text_completion chunks) and embeddings
// (vectors out: no output tokens, no stream).
const (
	Completions Endpoint = "completions"
	Embeddings  Endpoint = "embeddings"
)

var completionsEndpoint = endpointSpec{
	name: Completions, path: "/v1/completions", parse: (*Request).parseCompletions,
	streams: true, usageOnRequest: true, caps: []string{"max_tokens"}, minCap: 1,
	body: (*ResponseMeter).chunkBody, event: (*ResponseMeter).chunkEvent, stop: stopCompletions,
}

var embeddingsEndpoint = endpointSpec{
	name: Embeddings, path: "/v1/embeddings", parse: (*Request).parseEmbeddings,
	body: (*ResponseMeter).chunkBody, event: (*ResponseMeter).chunkEvent,
}

// parseCompletions reads n, best_of and the prompts: each prompt gets its own
// choices.
func (r *Request) parseCompletions(f *topFields) error {
	b := r.body
	if err := r.parseN(f); err != nil {
		return err
	}
	if f.bestOf.Present() {
		bestOf, present, err := positiveInt(b, f.bestOf, "best_of", maxBestOf)
		if err != nil {
			return err
		}
		if present && bestOf > r.Choices {
			r.Choices = bestOf // best_of candidates are generated and billed server-side
		}
	}
	// echo: true repeats each prompt before its completion, so the text relayed is
	// not the output the cap bounds (Limit then leaves the stream uncut).
	r.echo = f.echo.Present() && r.body[f.echo.Start] == 't'
	if !f.prompt.Present() {
		return nil
	}
	prompts, err := r.parsePromptLike(f.prompt, "prompt")
	if err != nil {
		return err
	}
	r.Choices *= max(prompts, 1) // each prompt gets its own completions
	return nil
}

// parseEmbeddings reads the inputs, at least one.
func (r *Request) parseEmbeddings(f *topFields) error {
	if !f.input.Present() {
		return missingParam("input")
	}
	items, err := r.parsePromptLike(f.input, "input")
	if err != nil {
		return err
	}
	if items == 0 {
		return badValue("input", "expected a non-empty string or array, but got an empty array.")
	}
	return nil
}

// parsePromptLike collects a completions prompt or an embeddings input: a string, an
// array of strings, an array of token ids, or an array of token-id arrays (token
// arrays count by their length). It returns the number of prompts.
func (r *Request) parsePromptLike(m jsonscan.Member, param string) (int64, error) {
	b := r.body
	switch b[m.Start] {
	case '"':
		text, _ := jsonscan.TextAt(b, m.Start, m.End)
		r.texts = append(r.texts, text)
		r.ItemsParam, r.Items, r.LargestItem = param, 1, m.End-m.Start
		return 1, nil
	case 'n':
		if param == "prompt" {
			return 0, nil
		}
	case '[':
		const (
			unknown = iota
			strs
			ids
			idArrays
		)
		kind, count, idx := unknown, int64(0), 0
		it := jsonscan.Elements(b, m.Start)
		r.ItemsParam = param
		for s, e, ok := it.Next(); ok; s, e, ok = it.Next() {
			p := itemParam(param, idx)
			idx++
			if count == maxItems {
				return 0, badValue(param, "more than %d items.", maxItems)
			}
			count++
			k := unknown
			switch b[s] {
			case '"':
				k = strs
			case '[':
				k = idArrays
			default:
				k = ids
			}
			if kind == unknown {
				kind = k
			} else if k != kind {
				return 0, badType(p, "the same type as the other items", b, s)
			}
			if k != ids {
				r.LargestItem = max(r.LargestItem, e-s)
			}
			switch k {
			case strs:
				text, _ := jsonscan.TextAt(b, s, e)
				r.texts = append(r.texts, text)
			case ids:
				if _, res := jsonscan.IntAt(b, s, e); res != jsonscan.IntOK {
					return 0, badType(p, "a string, an integer token id or an array of token ids", b, s)
				}
				r.fixed++
				count-- // one token array is one prompt
			case idArrays:
				n := int64(0)
				et := jsonscan.Elements(b, s)
				for es, ee, ok := et.Next(); ok; es, ee, ok = et.Next() {
					if _, res := jsonscan.IntAt(b, es, ee); res != jsonscan.IntOK {
						return 0, badType(itemParam(p, int(n)), "an integer token id", b, es)
					}
					n++
				}
				r.fixed += n
			}
		}
		if kind == ids {
			r.Items, r.LargestItem = 1, m.End-m.Start
			return 1, nil
		}
		r.Items = int(count)
		return count, nil
	}
	return 0, badType(param, "a string, an array of strings, or an array of token ids", b, m.Start)
}
