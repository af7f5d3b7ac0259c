package metering

import (
	"strings"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Images: POST /v1/images/generations (JSON), /v1/images/edits and
// /v1/images/variations (multipart). A model with ImagePrices (dall-e) is billed
// per image returned, at the price of the request's size and quality; any other
// image model (gpt-image-1) by the token usage its response reports — text input,
// cached input, image input (Price.ImageInput) and image output tokens. The
// estimate is the worst case: n images at the dearest size and quality the
// request allows ("auto" and absent values the dearest, but for a per-image
// model's own defaults), and for a token model imageOutputTokens per image plus
// imageInputTokensPerImage per uploaded image. Streamed image generation
// (stream: true) is refused: its partial images are not metered.
const (
	ImageGenerations Endpoint = "images/generations"
	ImageEdits       Endpoint = "images/edits"
	ImageVariations  Endpoint = "images/variations"
)

var imageGenerationsEndpoint = endpointSpec{
	name: ImageGenerations, path: "/v1/images/generations", parse: (*Request).parseImageGeneration,
	defaultModel: "dall-e-2", unitPrice: (*Request).imageUnitPrice,
	body: (*ResponseMeter).imagesBody, event: (*ResponseMeter).noEvent,
}

var imageEditsEndpoint = endpointSpec{
	name: ImageEdits, path: "/v1/images/edits", multipart: true, parseForm: (*Request).parseImageEdit,
	defaultModel: "dall-e-2", unitPrice: (*Request).imageUnitPrice,
	body: (*ResponseMeter).imagesBody, event: (*ResponseMeter).noEvent,
}

var imageVariationsEndpoint = endpointSpec{
	name: ImageVariations, path: "/v1/images/variations", multipart: true, parseForm: (*Request).parseImageVariation,
	defaultModel: "dall-e-2", unitPrice: (*Request).imageUnitPrice,
	body: (*ResponseMeter).imagesBody, event: (*ResponseMeter).noEvent,
}

// imageOutputTokens are gpt-image-1's output tokens per image, by quality and
// size (1024x1024, 1024x1536, 1536x1024), from OpenAI's image generation guide.
var imageOutputTokens = map[string][3]int64{
	"low":    {272, 408, 400},
	"medium": {1056, 1584, 1568},
	"high":   {4160, 6240, 6208},
}

var imageSizes = [3]string{"1024x1024", "1024x1536", "1536x1024"}

// imageInputTokensPerImage is the estimate of one uploaded image's input tokens
// for a token-priced edit: the largest image the model writes (high, 1024x1536).
// The response's usage bills the actual count.
const imageInputTokensPerImage = 6240

// imageOutputBound is the most output tokens one image of a token-priced model
// may take: its quality's row ("auto", absent or unknown: high) at its size
// ("auto", absent or unknown: the largest).
func imageOutputBound(size, quality string) int64 {
	row, ok := imageOutputTokens[quality]
	if !ok {
		row = imageOutputTokens["high"]
	}
	for i, s := range imageSizes {
		if s == size {
			return row[i]
		}
	}
	return max(row[0], row[1], row[2])
}

// imageUnitPrice prices an image request (see media.go).
func (r *Request) imageUnitPrice(p Price) (Price, error) {
	n := max(r.media.n, 1)
	if p.Images != nil {
		unit, ok := p.Images.Unit(r.media.size, r.media.quality)
		if !ok {
			return Price{}, badValue("model", "%s has no price per image configured.", snippet([]byte(r.Model)))
		}
		r.media.perImage = true
		r.texts, r.fixed = nil, 0 // the prompt is not billed: the image is
		r.outputBound = n
		u := perUnit(unit)
		return Price{Output: u, Reasoning: u, AudioOutput: u, MaxOutputTokens: 1}, nil
	}
	r.outputBound = mulSat(n, imageOutputBound(r.media.size, r.media.quality))
	r.imageInput = mulSat(r.media.inputImages, imageInputTokensPerImage)
	q := p
	q.AudioInput = p.ImageInput
	if q.AudioInput == 0 {
		q.AudioInput = p.Input
	}
	q.Reasoning, q.AudioOutput = p.Output, p.Output // all output is image output
	return q, nil
}

// parseImageGeneration reads prompt (required), n, size and quality.
func (r *Request) parseImageGeneration(f *topFields) error {
	b := r.body
	if f.stream.Present() && b[f.stream.Start] == 't' {
		return badValue("stream", "creditgate does not relay streamed image generation; leave stream unset or false.")
	}
	if !f.prompt.Present() || b[f.prompt.Start] == 'n' {
		return missingParam("prompt")
	}
	prompt, ok := jsonscan.TextAt(b, f.prompt.Start, f.prompt.End)
	if !ok {
		return badType("prompt", "a string", b, f.prompt.Start)
	}
	r.texts = append(r.texts, prompt)
	r.media.n = 1
	if f.n.Present() {
		n, present, err := positiveInt(b, f.n, "n", maxImages)
		if err != nil {
			return err
		}
		if present {
			r.media.n = n
		}
	}
	var err error
	if r.media.size, err = optionalString(b, f.size, "size"); err != nil {
		return err
	}
	if r.media.quality, err = optionalString(b, f.quality, "quality"); err != nil {
		return err
	}
	r.media.size, r.media.quality = strings.Clone(r.media.size), strings.Clone(r.media.quality)
	return nil
}

// parseImageEdit reads an edit's form: prompt (required), n, size, quality and
// one or more image files (image, or image[] for several).
func (r *Request) parseImageEdit(form *Multipart) error {
	prompt, ok := form.Field("prompt")
	if !ok || prompt == "" {
		return missingParam("prompt")
	}
	r.texts = append(r.texts, prompt)
	return r.parseImageForm(form)
}

// parseImageVariation reads a variation's form: n, size and one image file.
func (r *Request) parseImageVariation(form *Multipart) error { return r.parseImageForm(form) }

func (r *Request) parseImageForm(form *Multipart) error {
	if v, _ := form.Field("stream"); v == "true" {
		return badValue("stream", "creditgate does not relay streamed image edits; leave stream unset or false.")
	}
	n, present, err := formInt(form, "n", maxImages)
	if err != nil {
		return err
	}
	r.media.n = 1
	if present {
		r.media.n = n
	}
	r.media.size, _ = form.Field("size")
	r.media.quality, _ = form.Field("quality")
	for _, f := range form.Files() {
		if f.Name == "image" || f.Name == "image[]" {
			r.media.inputImages++
		}
	}
	if r.media.inputImages == 0 {
		return missingParam("image")
	}
	r.Items, r.ItemsParam = int(r.media.inputImages), "image"
	return nil
}

// imagesBody meters an images response: the images in data are counted (the bill
// of a per-image model), and the usage object read (a token model's), its
// input_tokens_details.image_tokens as image input (the AudioInput class).
func (m *ResponseMeter) imagesBody(b []byte) {
	s, ok := jsonObject(b)
	if !ok {
		return
	}
	m.done = true
	images := int64(-1)
	var usage jsonscan.Member
	it := jsonscan.Members(b, s)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("data") && b[f.Start] == '[':
			images = 0
			et := jsonscan.Elements(b, f.Start)
			for _, _, ok := et.Next(); ok; _, _, ok = et.Next() {
				images++
			}
		case f.Is("usage") && b[f.Start] == '{':
			usage = f
		}
	}
	if m.perImage {
		if images >= 0 {
			m.usage, m.hasUsage = Tokens{Output: images}, true
		}
		return
	}
	if usage.Present() {
		m.readImageUsage(b, usage)
	}
}

// readImageUsage reads an images usage object: input_tokens, output_tokens and
// input_tokens_details {text_tokens, image_tokens, cached_tokens}. A usage object
// whose totals are missing or absurd is ignored (the estimate bills then).
func (m *ResponseMeter) readImageUsage(b []byte, u jsonscan.Member) {
	in, out := int64(-1), int64(-1)
	var t Tokens
	it := jsonscan.Members(b, u.Start)
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		switch {
		case f.Is("input_tokens"):
			in = saneCount(b, f)
		case f.Is("output_tokens"):
			out = saneCount(b, f)
		case f.Is("input_tokens_details") && b[f.Start] == '{':
			dt := jsonscan.Members(b, f.Start)
			for g, ok := dt.Next(); ok; g, ok = dt.Next() {
				switch {
				case g.Is("image_tokens"):
					t.AudioInput = max(saneCount(b, g), 0)
				case g.Is("cached_tokens"):
					t.CachedInput = max(saneCount(b, g), 0)
				}
			}
		}
	}
	if in < 0 || out < 0 {
		return
	}
	t.Input, t.Output = in, out
	m.usage, m.hasUsage = t, true
}

// ImageCounter counts the images of an images response as it passes, without
// keeping it: the "b64_json" and "url" members of the objects in the top-level
// "data" array (depth 3), read with a JSON string and nesting tracker. It bills a
// per-image model's response too large to be kept whole for metering.
type ImageCounter struct {
	depth    int
	inString bool
	escape   bool
	key      []byte // the last string's first bytes, while it may be a key
	keyLen   int    // its full length
	pending  bool   // a string just ended at depth 3: a ':' makes it a key
	images   int64
}

// Write feeds the next bytes of the body; it never fails.
func (c *ImageCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if c.inString {
			switch {
			case c.escape:
				c.escape = false
			case b == '\\':
				c.escape = true
			case b == '"':
				c.inString, c.pending = false, c.depth == 3
				continue
			}
			if c.keyLen < len("b64_json")+1 {
				c.key = append(c.key, b)
			}
			c.keyLen++
			continue
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			c.inString, c.key, c.keyLen = true, c.key[:0], 0
		case ':':
			if c.pending && (string(c.key) == "b64_json" || string(c.key) == "url") && c.keyLen == len(c.key) {
				c.images++
			}
		case '{', '[':
			c.depth++
		case '}', ']':
			c.depth--
		}
		c.pending = false
	}
	return len(p), nil
}

// Images is the count so far.
func (c *ImageCounter) Images() int64 { return c.images }

// CountsImages reports whether r's response is billed by the images it returns
// (a per-image model; set once PriceFor has priced it).
func (r *Request) CountsImages() bool { return r.media.perImage }

// CountedImages bills a per-image model's response by n images counted as it
// passed (ImageCounter), when the body was too large to be metered whole.
func (m *ResponseMeter) CountedImages(n int64) {
	if m.perImage {
		m.cached = false
		m.usage, m.hasUsage, m.done = Tokens{Output: n}, true, true
	}
}
