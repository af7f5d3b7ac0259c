package metering

import (
	"math"
	"strconv"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
	"github.com/creditgate/creditgate/money"
)

// The media endpoints (moderations, images, speech) go through the same
// admission as the token endpoints — estimate, hold, forward, settle within the
// Limit — with their own price units expressed in the token machinery, so the
// overdraft bound holds unchanged:
//   - per image (dall-e): the request is billed at a price whose Output class is
//     the price of one image at its size and quality, per 1M "tokens", and its
//     output is the number of images (Request.outputBound is n; the response's
//     images are counted);
//   - per character (tts-1): the Input class is the price of 1M characters and
//     the input is the number of characters;
//   - per token (gpt-image-1, gpt-4o-mini-tts): the model's token prices, image
//     input tokens in the AudioInput class at Price.ImageInput, and an output
//     bound from the request (images: n × the output tokens of its size and
//     quality; speech: speechAudioTokensPerChar per input character).
//
// The usage event then carries the units in its token fields: completion tokens
// are images for a per-image model, prompt tokens are characters for a
// per-character one, and audio prompt tokens are image input tokens on the
// image endpoints.

// mediaParams are what prices an image or speech request.
type mediaParams struct {
	n             int64  // images to generate, 1 when absent
	size, quality string // images, as sent ("" when absent)
	inputImages   int64  // image edits: the image files uploaded
	chars         int64  // speech: the input's characters
	perImage      bool   // billed per image (set by unitPrice)
}

// ImagePrices price an image model per image (dall-e-2, dall-e-3).
type ImagePrices struct {
	// PerImage maps a quality ("standard", "hd") and a size ("1024x1024") to the
	// price of one image.
	PerImage map[string]map[string]money.Micros
	// DefaultSize and DefaultQuality are what the model generates when the request
	// names none; "" leaves that to the worst case.
	DefaultSize, DefaultQuality string
}

// Unit returns the price of one image at size and quality: "" means the model's
// default; "auto", or a value the table does not list, means the dearest entry
// (the upstream picks, or refuses the request, which then costs nothing). ok is
// false for an empty table.
func (ip *ImagePrices) Unit(size, quality string) (price money.Micros, ok bool) {
	if quality == "" {
		quality = ip.DefaultQuality
	}
	if size == "" {
		size = ip.DefaultSize
	}
	price = -1
	_, qualityKnown := ip.PerImage[quality]
	for q, sizes := range ip.PerImage {
		if qualityKnown && q != quality {
			continue
		}
		_, sizeKnown := sizes[size]
		for s, p := range sizes {
			if sizeKnown && s != size {
				continue
			}
			price = max(price, p)
		}
	}
	return price, price >= 0
}

// maxUnitPrice bounds the price of one unit (an image), so that as a per-1M price
// it stays far from overflow: $1,000,000.
const maxUnitPrice = money.Micros(1_000_000_000_000)

// perUnit is a Price whose every class is unit per "token": unit × 1M per 1M.
func perUnit(unit money.Micros) money.Micros {
	return min(max(unit, 0), maxUnitPrice) * 1_000_000
}

// PriceFor returns the price r is billed at, given its model's price p: p itself
// for the token endpoints; for the media endpoints the price in the request's own
// unit (see above), which also sets the request's output bound. An error is a
// *RequestError (a request the model's price cannot bill).
func (r *Request) PriceFor(p Price) (Price, error) {
	perImage, perChar := p.Images != nil, p.Characters > 0
	// A request built by hand (the transcription endpoints', which parse their
	// own form) has no spec: it is billed by tokens or by the minute, as a
	// token endpoint's.
	spec := r.spec
	if spec == nil {
		spec = &endpointSpec{name: r.Endpoint}
	}
	switch {
	case spec.unitPrice == nil && (perImage || perChar),
		spec.name == Speech && perImage,
		spec.unitPrice != nil && spec.name != Speech && perChar:
		// Its token classes are not its price: billed by them, it would be free.
		unit := "per image"
		if perChar {
			unit = "per character"
		}
		return Price{}, badValue("model", "%s is priced %s; creditgate does not serve it on this endpoint.", snippet([]byte(r.Model)), unit)
	case spec.unitPrice == nil:
		return p, nil
	}
	return spec.unitPrice(r, p)
}

// RawBody reports whether the endpoint's 2xx body is not JSON but bytes relayed as
// they come (speech audio), billed by the request alone.
func (r *Request) RawBody() bool { return r.spec.raw }

// Batchable reports whether requests to ep may be batched (/v1/batches): the
// token endpoints and moderations, not images or speech.
func Batchable(ep Endpoint) bool {
	s := specOf(ep)
	return s != nil && s.unitPrice == nil && !s.multipart
}

// IsMultipart reports whether ep takes a multipart/form-data body
// (ParseMultipartRequest).
func IsMultipart(ep Endpoint) bool {
	s := specOf(ep)
	return s != nil && s.multipart
}

// ParseMultipartRequest validates and parses a multipart/form-data body for ep
// (image edits and variations) with the bounded Multipart reader. The whole body
// is parsed (the proxy has read it within limits.max_body_bytes), so fields sent
// after the files — the official SDKs' order — are read too. Every error is a
// *RequestError.
func ParseMultipartRequest(ep Endpoint, contentType string, body []byte) (*Request, error) {
	spec := specOf(ep)
	if spec == nil || !spec.multipart {
		return nil, &RequestError{Message: "metering: " + string(ep) + " does not take a multipart body"}
	}
	form, err := NewMultipart(contentType, MultipartLimits{})
	if err != nil {
		return nil, err
	}
	if _, err := form.Write(body); err != nil {
		return nil, err
	}
	if err := form.Close(); err != nil {
		return nil, err
	}
	r := &Request{Endpoint: ep, spec: spec, body: body, Choices: 1, empty: true}
	r.Model = spec.defaultModel
	if m, ok := form.Field("model"); ok && m != "" {
		r.Model = m
	}
	if r.Model == "" {
		return nil, &RequestError{Message: "you must provide a model parameter", Param: "model"}
	}
	if err := spec.parseForm(r, form); err != nil {
		return nil, err
	}
	return r, nil
}

// maxImages is OpenAI's own limit on n for images.
const maxImages = 10

// formInt reads an optional integer field in [1, limit].
func formInt(form *Multipart, name string, limit int64) (int64, bool, error) {
	v, ok := form.Field(name)
	if !ok || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err != nil && n == 0:
		return 0, false, badValue(name, "expected an integer, but got %s.", snippet([]byte(v)))
	case err != nil || n > limit:
		return 0, false, badValue(name, "integer above maximum value. Expected a value <= %d, but got %s instead.", limit, snippet([]byte(v)))
	case n < 1:
		return 0, false, badValue(name, "expected a positive integer, but got %s.", snippet([]byte(v)))
	}
	return n, true, nil
}

// optionalString reads an optional string member (null is absent).
func optionalString(b []byte, m jsonscan.Member, param string) (string, error) {
	if !m.Present() || b[m.Start] == 'n' {
		return "", nil
	}
	text, ok := jsonscan.TextAt(b, m.Start, m.End)
	if !ok {
		return "", badType(param, "a string", b, m.Start)
	}
	return text, nil
}

// rawBody meters a relayed raw body (speech audio): there is nothing to read in
// it, only that it ended.
func (m *ResponseMeter) rawBody([]byte) { m.done = true }

// plainUsageBody meters a JSON body that may carry a usage object (moderations
// carry none: their input is billed by the local count).
func (m *ResponseMeter) plainUsageBody(b []byte) {
	s, ok := jsonObject(b)
	if !ok {
		return
	}
	m.done = true
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		if f.Is("usage") && b[f.Start] == '{' {
			m.readUsage(b, f.Start, f.End)
		}
	}
}

// noEvent passes an event through unread: the media endpoints do not stream
// (their parsers refuse stream), so an event stream is not theirs to meter.
func (m *ResponseMeter) noEvent([]byte) bool { return true }

// mulSat is a × b, saturated at MaxInt64 (both non-negative).
func mulSat(a, b int64) int64 {
	if a != 0 && b > math.MaxInt64/a {
		return math.MaxInt64
	}
	return a * b
}
