package metering

import (
	"strings"
	"unicode/utf8"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Speech: POST /v1/audio/speech turns text into audio, relayed to the app as the
// upstream writes it (RawBody: never buffered, never read). A model with a
// per-character price (tts-1, tts-1-hd) is billed the input's characters, known
// exactly before forwarding. A token model (gpt-4o-mini-tts) is billed its text
// input tokens (input and instructions, counted locally) plus an audio output
// bound of speechAudioTokensPerChar per input character (at least
// speechMinAudioTokens): the audio response reports no usage, so that estimate
// is what it is billed. stream_format "sse" is refused (its events are not
// metered).
const Speech Endpoint = "audio/speech"

var speechEndpoint = endpointSpec{
	name: Speech, path: "/v1/audio/speech", parse: (*Request).parseSpeech,
	unitPrice: (*Request).speechUnitPrice, raw: true,
	body: (*ResponseMeter).rawBody, event: (*ResponseMeter).noEvent,
}

// The audio output bound of a token-priced speech model. gpt-4o-mini-tts writes
// about 1,250 audio tokens a minute ($0.015/min at $12/1M) and English speech
// runs about 14 characters a second, 1.5 tokens a character: the bound allows
// twice that, for slower speech the instructions may ask for.
const (
	speechAudioTokensPerChar = 3
	speechMinAudioTokens     = 64
)

// parseSpeech reads input (required), instructions and stream_format.
func (r *Request) parseSpeech(f *topFields) error {
	b := r.body
	if !f.input.Present() || b[f.input.Start] == 'n' {
		return missingParam("input")
	}
	input, ok := jsonscan.TextAt(b, f.input.Start, f.input.End)
	if !ok {
		return badType("input", "a string", b, f.input.Start)
	}
	r.texts = append(r.texts, input)
	r.media.chars = int64(utf8.RuneCountInString(input))
	r.Items, r.ItemsParam, r.LargestItem = 1, "input", f.input.End-f.input.Start
	instructions, err := optionalString(b, f.instructions, "instructions")
	if err != nil {
		return err
	}
	if instructions != "" {
		r.texts = append(r.texts, instructions)
	}
	format, err := optionalString(b, f.streamFormat, "stream_format")
	if err != nil {
		return err
	}
	if strings.EqualFold(format, "sse") {
		return badValue("stream_format", "creditgate relays speech as audio only; leave stream_format unset or 'audio'.")
	}
	return nil
}

// speechUnitPrice prices a speech request (see media.go).
func (r *Request) speechUnitPrice(p Price) (Price, error) {
	if p.Characters > 0 {
		r.texts, r.fixed = nil, r.media.chars
		c := p.Characters
		return Price{Input: c, CachedInput: c, AudioInput: c}, nil
	}
	r.outputBound = max(speechMinAudioTokens, mulSat(r.media.chars, speechAudioTokensPerChar))
	q := p
	q.Output, q.Reasoning = p.AudioOutput, p.AudioOutput // all output is audio
	return q, nil
}
