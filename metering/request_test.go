package metering

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// The example conversation of OpenAI's cookbook "How to count tokens with tiktoken"
// (github.com/openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb,
// section 6). Its printed output: "129 prompt tokens counted by the OpenAI API." for
// gpt-3.5-turbo, gpt-4-0613 and gpt-4 (cl100k_base), and "124 prompt tokens counted
// by the OpenAI API." for gpt-4o and gpt-4o-mini (o200k_base).
const cookbookMessages = `[
  {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
  {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
  {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
  {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
  {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
  {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
]`

// Section 7 of the same notebook: the weather tool and two messages. Printed output:
// "105 prompt tokens counted by the OpenAI API." for gpt-3.5-turbo and gpt-4, "101"
// for gpt-4o and gpt-4o-mini.
const cookbookTools = `[{"type": "function", "function": {
  "name": "get_current_weather",
  "description": "Get the current weather in a given location",
  "parameters": {"type": "object", "properties": {
      "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
      "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}},
    "required": ["location"]}}}]`

const cookbookToolMessages = `[
  {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
  {"role": "user", "content": "What's the weather like in San Francisco?"}
]`

func TestInputTokensCookbook(t *testing.T) {
	tests := []struct {
		model, body string
		want        int64
	}{
		{"gpt-3.5-turbo", `{"model":"gpt-3.5-turbo","max_tokens":1,"messages":` + cookbookMessages + `}`, 129},
		{"gpt-4-0613", `{"model":"gpt-4-0613","max_tokens":1,"messages":` + cookbookMessages + `}`, 129},
		{"gpt-4", `{"model":"gpt-4","max_tokens":1,"messages":` + cookbookMessages + `}`, 129},
		{"gpt-4o", `{"model":"gpt-4o","max_tokens":1,"messages":` + cookbookMessages + `}`, 124},
		{"gpt-4o-mini", `{"model":"gpt-4o-mini","max_tokens":1,"messages":` + cookbookMessages + `}`, 124},
		{"gpt-3.5-turbo tools", `{"model":"gpt-3.5-turbo","messages":` + cookbookToolMessages + `,"tools":` + cookbookTools + `}`, 105},
		{"gpt-4 tools", `{"model":"gpt-4","messages":` + cookbookToolMessages + `,"tools":` + cookbookTools + `}`, 105},
		{"gpt-4o tools", `{"model":"gpt-4o","messages":` + cookbookToolMessages + `,"tools":` + cookbookTools + `}`, 101},
		{"gpt-4o-mini tools", `{"model":"gpt-4o-mini","messages":` + cookbookToolMessages + `,"tools":` + cookbookTools + `}`, 101},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			r := mustParse(t, ChatCompletions, tt.body)
			tok := tokenizer(t, EncodingForModel(r.Model))
			if got := r.InputTokens(tok); got != (Tokens{Input: tt.want}) {
				t.Errorf("InputTokens = %+v, want Input %d", got, tt.want)
			}
		})
	}
}

// The legacy "functions" list is counted like "tools".
func TestInputTokensLegacyFunctions(t *testing.T) {
	fn := strings.TrimSuffix(strings.TrimPrefix(cookbookTools, `[{"type": "function", "function": `), `}]`)
	for _, model := range []string{"gpt-4", "gpt-4o"} {
		a := mustParse(t, ChatCompletions, `{"model":"`+model+`","messages":`+cookbookToolMessages+`,"tools":`+cookbookTools+`}`)
		b := mustParse(t, ChatCompletions, `{"model":"`+model+`","messages":`+cookbookToolMessages+`,"functions":[`+fn+`]}`)
		tok := tokenizer(t, EncodingForModel(model))
		if ga, gb := a.InputTokens(tok), b.InputTokens(tok); ga != gb {
			t.Errorf("%s: tools count %d, functions count %d", model, ga.Input, gb.Input)
		}
	}
}

// The tool overhead follows the tokenizer's encoding when it reports one, else the model's.
func TestInputTokensToolOverheadByEncoding(t *testing.T) {
	r := mustParse(t, ChatCompletions, `{"model":"gpt-4o","messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}}]}`)
	noEncoding := struct{ Tokenizer }{wordTokenizer} // hides Encoding()
	cl := fakeTokenizer{count: wordTokenizer.count, encoding: CL100kBase}
	// messages: 3 + role 1 + content 1 + priming 3 = 8; function: "f:" 1 + func_end 12.
	if got := r.InputTokens(noEncoding).Input; got != 8+1+12+funcInitO200k {
		t.Errorf("model encoding: got %d, want %d", got, 8+1+12+funcInitO200k)
	}
	if got := r.InputTokens(cl).Input; got != 8+1+12+funcInitCL100 {
		t.Errorf("cl100k tokenizer: got %d, want %d", got, 8+1+12+funcInitCL100)
	}
}

// Hand-computed counts with the word tokenizer (1 token per whitespace-separated word).
func TestInputTokensShapes(t *testing.T) {
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want int64
	}{
		// chat: 3 per message + strings + 1 per name + 3 priming
		{"chat string content", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"one two three"}]}`, 3 + 1 + 3 + 3},
		{"chat name", ChatCompletions, `{"model":"m","messages":[{"role":"user","name":"bob","content":"hi"}]}`, 3 + 1 + 1 + 1 + 1 + 3},
		{"chat content parts", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a b"},{"type":"text","text":"c"}]}]}`, 3 + 1 + 2 + 1 + 3},
		{"chat null content, tool calls", ChatCompletions, `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]}]}`, 3 + 1 + 1 + 2 + 3},
		{"chat tool result", ChatCompletions, `{"model":"m","messages":[{"role":"tool","tool_call_id":"call_1","content":"sunny 21C"}]}`, 3 + 1 + 1 + 2 + 3},
		{"chat function_call", ChatCompletions, `{"model":"m","messages":[{"role":"assistant","function_call":{"name":"f","arguments":"{}"}}]}`, 3 + 1 + 1 + 1 + 3},
		{"chat refusal part", ChatCompletions, `{"model":"m","messages":[{"role":"assistant","content":[{"type":"refusal","refusal":"no way"}]}]}`, 3 + 1 + 2 + 3},
		{"chat audio part not counted", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, 3 + 1 + 3},
		{"chat escaped text", ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"a\nb\u0020c"}]}`, 3 + 1 + 3 + 3},
		// completions: prompt strings, token arrays by length; no framing
		{"completions string", Completions, `{"model":"m","prompt":"one two"}`, 2},
		{"completions strings", Completions, `{"model":"m","prompt":["one two","three"]}`, 3},
		{"completions token array", Completions, `{"model":"m","prompt":[1,2,3,4]}`, 4},
		{"completions token arrays", Completions, `{"model":"m","prompt":[[1,2],[3,4,5]]}`, 5},
		{"completions no prompt", Completions, `{"model":"m"}`, 0},
		// embeddings: input the same way
		{"embeddings string", Embeddings, `{"model":"m","input":"a b c"}`, 3},
		{"embeddings strings", Embeddings, `{"model":"m","input":["a b","c"]}`, 3},
		{"embeddings tokens", Embeddings, `{"model":"m","input":[5,6,7]}`, 3},
		{"embeddings token arrays", Embeddings, `{"model":"m","input":[[5,6],[7]]}`, 3},
		// responses: instructions and input as messages, + 3 priming
		{"responses string", Responses, `{"model":"m","input":"one two"}`, 3 + 1 + 2 + 3},
		{"responses instructions", Responses, `{"model":"m","instructions":"be brief","input":"hi"}`, 3 + 1 + 2 + 3 + 1 + 1 + 3},
		{"responses items", Responses, `{"model":"m","input":[
			{"role":"user","content":[{"type":"input_text","text":"a b"}]},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"c"}]},
			{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
			{"type":"function_call_output","call_id":"c1","output":"x y z"},
			{"type":"reasoning","id":"rs_1","summary":[]}]}`, (3 + 1 + 2) + (3 + 1 + 1) + (3 + 1 + 1) + (3 + 3) + 3},
		{"responses tools", Responses, `{"model":"m","input":"hi","tools":[{"type":"function","name":"f","description":"Do it.","parameters":{"type":"object","properties":{"x":{"type":"string","description":"X."}}}},{"type":"web_search"}]}`,
			3 + 1 + 1 + 3 + // message
				funcInitO200k + 2 + // "f:Do it"
				propInit + propKey + 1 + // "x:string:X"
				funcEnd},
		{"responses no input", Responses, `{"model":"m","previous_response_id":"resp_1"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.ep, tt.body)
			if got := r.InputTokens(wordTokenizer).Input; got != tt.want {
				t.Errorf("InputTokens = %d, want %d", got, tt.want)
			}
		})
	}
}

// pngDataURL returns a data: URL holding a PNG header of the given size.
func pngDataURL(w, h uint32) string {
	b := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, 8, 6, 0, 0, 0, 0, 0, 0, 0) // depth, colour type, …, CRC
	b = append(b, make([]byte, 200)...)      // pixel data stand-in
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b)
}

func gifDataURL(w, h uint16) string {
	b := []byte("GIF89a")
	b = binary.LittleEndian.AppendUint16(b, w)
	b = binary.LittleEndian.AppendUint16(b, h)
	b = append(b, make([]byte, 40)...)
	return "data:image/gif;base64," + base64.StdEncoding.EncodeToString(b)
}

// jpegDataURL has an APP1 segment of padding before the frame header, as EXIF data is.
func jpegDataURL(w, h uint16, app1 int) string {
	b := []byte{0xFF, 0xD8, 0xFF, 0xE1}
	b = binary.BigEndian.AppendUint16(b, uint16(app1+2))
	b = append(b, make([]byte, app1)...)
	b = append(b, 0xFF, 0xC0, 0x00, 0x11, 0x08)
	b = binary.BigEndian.AppendUint16(b, h)
	b = binary.BigEndian.AppendUint16(b, w)
	b = append(b, make([]byte, 30)...)
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b)
}

func webpDataURL(kind string, w, h int) string {
	b := []byte("RIFF\x00\x00\x00\x00WEBP" + kind + "\x00\x00\x00\x00")
	switch kind {
	case "VP8 ":
		b = append(b, 0, 0, 0, 0x9d, 0x01, 0x2a) // frame tag, start code
		b = binary.LittleEndian.AppendUint16(b, uint16(w))
		b = binary.LittleEndian.AppendUint16(b, uint16(h))
	case "VP8L":
		b = append(b, 0x2f)
		b = binary.LittleEndian.AppendUint32(b, uint32(w-1)|uint32(h-1)<<14)
	case "VP8X":
		b = append(b, 0, 0, 0, 0)
		b = append(b, byte(w-1), byte((w-1)>>8), byte((w-1)>>16), byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	}
	b = append(b, make([]byte, 40)...)
	return "data:image/webp;base64," + base64.StdEncoding.EncodeToString(b)
}

func TestImageTokens(t *testing.T) {
	// OpenAI's documented examples: 1024×1024 high = 765; 2048×4096 high = 1105;
	// 4096×8192 low = 85.
	tests := []struct {
		w, h int64
		want int64
	}{
		{1024, 1024, 765},
		{2048, 4096, 1105},
		{512, 512, 255},
		{100, 100, 255},
		{768, 768, 765},
		{4096, 8192, 1105},
		{0, 10, imageDefaultTokens},
	}
	for _, tt := range tests {
		if got := imageTokens(tt.w, tt.h); got != tt.want {
			t.Errorf("imageTokens(%d, %d) = %d, want %d", tt.w, tt.h, got, tt.want)
		}
	}
}

func TestInputTokensImages(t *testing.T) {
	chat := func(part string) string {
		return `{"model":"gpt-4o","messages":[{"role":"user","content":[` + part + `]}]}`
	}
	const frame = 3 + 1 + 3 // message framing, role "user", priming
	tests := []struct {
		name string
		ep   Endpoint
		body string
		want int64
	}{
		{"low detail", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}`), frame + 85},
		{"high, unknown size", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"high"}}`), frame + 765},
		{"auto, unknown size", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`), frame + 765},
		{"png 2048x4096", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + pngDataURL(2048, 4096) + `","detail":"high"}}`), frame + 1105},
		{"png 512x512 auto", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + pngDataURL(512, 512) + `"}}`), frame + 255},
		{"png low ignores size", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + pngDataURL(4096, 8192) + `","detail":"low"}}`), frame + 85},
		{"gif 1000x200", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + gifDataURL(1000, 200) + `"}}`), frame + 85 + 170*2},
		{"jpeg after exif", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + jpegDataURL(1600, 1200, 5000) + `"}}`), frame + 85 + 170*4},
		{"webp lossy", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + webpDataURL("VP8 ", 300, 900) + `"}}`), frame + 85 + 170*2},
		{"webp lossless", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + webpDataURL("VP8L", 1025, 10) + `"}}`), frame + 85 + 170*3},
		{"webp extended", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + webpDataURL("VP8X", 3000, 3000) + `"}}`), frame + 765},
		{"escaped slashes", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"` + strings.ReplaceAll(pngDataURL(512, 512), "/", `\/`) + `"}}`), frame + 255},
		{"garbage base64", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!!notbase64"}}`), frame + 765},
		{"truncated png", ChatCompletions, chat(`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}}`), frame + 765},
		{"responses input_image", Responses, `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"` + pngDataURL(1024, 1024) + `","detail":"high"}]}]}`, frame + 765},
		{"responses input_image low", Responses, `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/y.png","detail":"low"}]}]}`, frame + 85},
		{"responses file_id image", Responses, `{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, frame + 765},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.ep, tt.body)
			if got := r.InputTokens(wordTokenizer).Input; got != tt.want {
				t.Errorf("InputTokens = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseRequestFields(t *testing.T) {
	tests := []struct {
		name                 string
		ep                   Endpoint
		body                 string
		stream, includeUsage bool
		choices, maxOutput   int64
	}{
		{"chat defaults", ChatCompletions, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, false, false, 1, 0},
		{"chat stream usage", ChatCompletions, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, true, true, 1, 0},
		{"chat n and max_tokens", ChatCompletions, `{"model":"gpt-4o","n":3,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, false, false, 3, 100},
		{"chat max_completion_tokens", ChatCompletions, `{"model":"gpt-4o","max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, false, false, 1, 50},
		{"chat both caps: the larger", ChatCompletions, `{"model":"gpt-4o","max_completion_tokens":50,"max_tokens":70,"messages":[{"role":"user","content":"hi"}]}`, false, false, 1, 70},
		{"chat nulls", ChatCompletions, `{"model":"gpt-4o","n":null,"stream":null,"stream_options":null,"max_tokens":null,"messages":[{"role":"user","content":"hi"}]}`, false, false, 1, 0},
		{"chat escaped key", ChatCompletions, `{"model":"gpt-4o","max\u005ftokens":9,"messages":[{"role":"user","content":"hi"}]}`, false, false, 1, 9},
		{"chat include_usage false", ChatCompletions, `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"hi"}]}`, true, false, 1, 0},
		{"completions n × best_of × prompts", Completions, `{"model":"davinci-002","prompt":["a","b"],"n":2,"best_of":3,"max_tokens":16}`, false, false, 6, 16},
		{"completions token array is one prompt", Completions, `{"model":"davinci-002","prompt":[1,2,3],"n":2}`, false, false, 2, 0},
		{"completions ignores max_completion_tokens", Completions, `{"model":"davinci-002","prompt":"a","max_completion_tokens":5}`, false, false, 1, 0},
		{"embeddings", Embeddings, `{"model":"text-embedding-3-small","input":["a","b"],"n":5,"max_tokens":3}`, false, false, 1, 0},
		{"responses", Responses, `{"model":"o3","input":"hi","stream":true,"max_output_tokens":2048,"max_tokens":5}`, true, false, 1, 2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.ep, tt.body)
			if r.Stream != tt.stream || r.IncludeUsage != tt.includeUsage || r.Choices != tt.choices || r.MaxOutput != tt.maxOutput {
				t.Errorf("got stream=%v includeUsage=%v choices=%d maxOutput=%d, want %v %v %d %d",
					r.Stream, r.IncludeUsage, r.Choices, r.MaxOutput, tt.stream, tt.includeUsage, tt.choices, tt.maxOutput)
			}
			if r.Endpoint != tt.ep || r.Model == "" {
				t.Errorf("endpoint %q model %q", r.Endpoint, r.Model)
			}
		})
	}
}

func TestParseRequestErrors(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
	tests := []struct {
		name, body string
		ep         Endpoint
		param      string
		contains   string
	}{
		{"malformed", `{"model":"gpt-4o",`, ChatCompletions, "", "parse the JSON"},
		{"trailing garbage", `{"model":"gpt-4o"} x`, ChatCompletions, "", "after the JSON value"},
		{"not an object", `["model"]`, ChatCompletions, "", "JSON object"},
		{"empty body", ``, ChatCompletions, "", "parse the JSON"},
		{"too deep", `{"model":"m",` + msgs + `,"x":` + deep + `}`, ChatCompletions, "", "deeper than 64"},
		{"missing model", `{` + msgs + `}`, ChatCompletions, "model", "model"},
		{"null model", `{"model":null,` + msgs + `}`, ChatCompletions, "model", "model"},
		{"model not a string", `{"model":4,` + msgs + `}`, ChatCompletions, "model", "expected a string"},
		{"empty model", `{"model":"",` + msgs + `}`, ChatCompletions, "model", "empty"},
		{"missing messages", `{"model":"m"}`, ChatCompletions, "messages", "messages"},
		{"messages not an array", `{"model":"m","messages":{"role":"user"}}`, ChatCompletions, "messages", "expected an array"},
		{"empty messages", `{"model":"m","messages":[]}`, ChatCompletions, "messages", "empty"},
		{"message not an object", `{"model":"m","messages":["hi"]}`, ChatCompletions, "messages[0]", "an object"},
		{"message without role", `{"model":"m","messages":[{"role":"user","content":"a"},{"content":"hi"}]}`, ChatCompletions, "messages[1].role", "role"},
		{"role not a string", `{"model":"m","messages":[{"role":1,"content":"hi"}]}`, ChatCompletions, "messages[0].role", "string"},
		{"content a number", `{"model":"m","messages":[{"role":"user","content":5}]}`, ChatCompletions, "messages[0].content", "content"},
		{"part not an object", `{"model":"m","messages":[{"role":"user","content":[1]}]}`, ChatCompletions, "messages[0].content[0]", "object"},
		{"part text not a string", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":7}]}]}`, ChatCompletions, "messages[0].content[0].text", "string"},
		{"image without image_url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, ChatCompletions, "messages[0].content[0].image_url", "image_url"},
		{"stream not a bool", `{"model":"m","stream":"yes",` + msgs + `}`, ChatCompletions, "stream", "boolean"},
		{"background not a bool", `{"model":"m","input":"hi","background":"yes"}`, Responses, "background", "boolean"},
		{"background stream", `{"model":"m","input":"hi","stream":true,"background":true}`, Responses, "background", "does not relay background streams"},
		{"background twice", `{"model":"m","input":"hi","background":false,"background":true}`, Responses, "background", "Duplicate"},
		{"stream_options not an object", `{"model":"m","stream":true,"stream_options":true,` + msgs + `}`, ChatCompletions, "stream_options", "object"},
		{"include_usage not a bool", `{"model":"m","stream":true,"stream_options":{"include_usage":1},` + msgs + `}`, ChatCompletions, "stream_options.include_usage", "boolean"},
		{"n zero", `{"model":"m","n":0,` + msgs + `}`, ChatCompletions, "n", "positive"},
		{"n negative", `{"model":"m","n":-2,` + msgs + `}`, ChatCompletions, "n", "positive"},
		{"n fractional", `{"model":"m","n":1.5,` + msgs + `}`, ChatCompletions, "n", "integer"},
		{"n string", `{"model":"m","n":"2",` + msgs + `}`, ChatCompletions, "n", "integer"},
		{"n too large", `{"model":"m","n":129,` + msgs + `}`, ChatCompletions, "n", "maximum"},
		{"max_tokens negative", `{"model":"m","max_tokens":-1,` + msgs + `}`, ChatCompletions, "max_tokens", "positive"},
		{"max_tokens float", `{"model":"m","max_tokens":10.0,` + msgs + `}`, ChatCompletions, "max_tokens", "integer"},
		{"max_tokens exponent", `{"model":"m","max_tokens":1e3,` + msgs + `}`, ChatCompletions, "max_tokens", "integer"},
		{"max_tokens huge", `{"model":"m","max_tokens":99999999999999999999999,` + msgs + `}`, ChatCompletions, "max_tokens", "maximum"},
		{"max_completion_tokens bool", `{"model":"m","max_completion_tokens":true,` + msgs + `}`, ChatCompletions, "max_completion_tokens", "integer"},
		{"duplicate max_tokens", `{"model":"m","max_tokens":5,"max_tokens":50000,` + msgs + `}`, ChatCompletions, "max_tokens", "Duplicate"},
		{"duplicate escaped key", `{"model":"m","max_tokens":5,"max_\u0074okens":50000,` + msgs + `}`, ChatCompletions, "max_tokens", "Duplicate"},
		{"duplicate include_usage", `{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_usage":true},` + msgs + `}`, ChatCompletions, "stream_options.include_usage", "Duplicate"},
		{"tools not an array", `{"model":"m",` + msgs + `,"tools":{}}`, ChatCompletions, "tools", "array"},
		{"tool not an object", `{"model":"m",` + msgs + `,"tools":[1]}`, ChatCompletions, "tools[0]", "object"},
		{"best_of zero", `{"model":"m","prompt":"a","best_of":0}`, Completions, "best_of", "positive"},
		{"prompt a number", `{"model":"m","prompt":5}`, Completions, "prompt", "string"},
		{"prompt mixed", `{"model":"m","prompt":["a",[1]]}`, Completions, "prompt[1]", "same type"},
		{"prompt bad token", `{"model":"m","prompt":[1,-2]}`, Completions, "prompt[1]", "token"},
		{"prompt bad nested token", `{"model":"m","prompt":[[1,"x"]]}`, Completions, "prompt[0][1]", "token"},
		{"embeddings no input", `{"model":"m"}`, Embeddings, "input", "input"},
		{"embeddings empty input", `{"model":"m","input":[]}`, Embeddings, "input", "empty"},
		{"embeddings null input", `{"model":"m","input":null}`, Embeddings, "input", "string"},
		{"responses input a number", `{"model":"m","input":3}`, Responses, "input", "string"},
		{"responses item not an object", `{"model":"m","input":["x"]}`, Responses, "input[0]", "object"},
		{"responses message without role", `{"model":"m","input":[{"type":"message","content":"x"}]}`, Responses, "input[0].role", "role"},
		{"responses content a number", `{"model":"m","input":[{"role":"user","content":1}]}`, Responses, "input[0].content", "content"},
		{"responses instructions a number", `{"model":"m","instructions":1}`, Responses, "instructions", "string"},
		{"responses max_output_tokens zero", `{"model":"m","max_output_tokens":0}`, Responses, "max_output_tokens", "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.ep, []byte(tt.body))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error = %v (%T), want *RequestError", err, err)
			}
			if re.Param != tt.param {
				t.Errorf("Param = %q, want %q (message %q)", re.Param, tt.param, re.Message)
			}
			if !strings.Contains(re.Message, tt.contains) {
				t.Errorf("Message = %q, want it to contain %q", re.Message, tt.contains)
			}
			if re.Error() != re.Message {
				t.Errorf("Error() = %q, want the message", re.Error())
			}
		})
	}
}

func TestParseRequestItemLimit(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"model":"m","messages":[`)
	for i := range maxItems + 1 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"role":"user"}`)
	}
	sb.WriteString(`]}`)
	_, err := ParseRequest(ChatCompletions, []byte(sb.String()))
	var re *RequestError
	if !errors.As(err, &re) || re.Param != "messages" || !strings.Contains(re.Message, fmt.Sprint(maxItems)) {
		t.Fatalf("error = %v, want a messages limit error", err)
	}
	// Exactly the limit is fine.
	body := strings.Replace(sb.String(), `{"role":"user"},`, ``, 1)
	if _, err := ParseRequest(ChatCompletions, []byte(body)); err != nil {
		t.Fatalf("%d messages: %v", maxItems, err)
	}
}

func TestParseRequestUnknownEndpoint(t *testing.T) {
	if _, err := ParseRequest("images", []byte(`{"model":"m"}`)); err == nil {
		t.Fatal("want an error for an unknown endpoint")
	}
}

func TestEndpointForPath(t *testing.T) {
	tests := []struct {
		path string
		want Endpoint
		ok   bool
	}{
		{"/v1/chat/completions", ChatCompletions, true},
		{"/v1/chat/completions/", ChatCompletions, true},
		{"/v1/completions", Completions, true},
		{"/v1/embeddings", Embeddings, true},
		{"/v1/responses", Responses, true},
		{"/v1/responses/resp_123", "", false},
		{"/v1/models", "", false},
		{"/chat/completions", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := EndpointForPath(tt.path)
		if got != tt.want || ok != tt.ok {
			t.Errorf("EndpointForPath(%q) = %q, %v; want %q, %v", tt.path, got, ok, tt.want, tt.ok)
		}
	}
}

func TestEncodingForModel(t *testing.T) {
	tests := map[string]string{
		"gpt-4o":                              O200kBase,
		"gpt-4o-mini-2024-07-18":              O200kBase,
		"chatgpt-4o-latest":                   O200kBase,
		"gpt-4.1-nano":                        O200kBase,
		"gpt-4.5-preview":                     O200kBase,
		"o1":                                  O200kBase,
		"o1-mini":                             O200kBase,
		"o3-mini":                             O200kBase,
		"o4-mini":                             O200kBase,
		"gpt-5":                               O200kBase,
		"gpt-5-nano":                          O200kBase,
		"ft:gpt-4o-mini-2024-07-18:acme::abc": O200kBase,
		"llama-3-70b":                         O200kBase,
		"":                                    O200kBase,
		"gpt-4":                               CL100kBase,
		"gpt-4-0613":                          CL100kBase,
		"gpt-4-turbo":                         CL100kBase,
		"gpt-4-32k":                           CL100kBase,
		"gpt-3.5-turbo":                       CL100kBase,
		"gpt-3.5-turbo-instruct":              CL100kBase,
		"text-embedding-3-small":              CL100kBase,
		"text-embedding-ada-002":              CL100kBase,
		"davinci-002":                         CL100kBase,
		"babbage-002":                         CL100kBase,
		"ft:gpt-3.5-turbo:acme::x":            CL100kBase,
	}
	for model, want := range tests {
		if got := EncodingForModel(model); got != want {
			t.Errorf("EncodingForModel(%q) = %q, want %q", model, got, want)
		}
	}
}

// A body that is not UTF-8 is refused, wherever the bad bytes are, with the offset of
// the first one; escaped text that decodes to invalid code points is still accepted
// (it becomes U+FFFD, as encoding/json decodes it).
func TestParseRequestRefusesInvalidUTF8(t *testing.T) {
	for _, tt := range []struct {
		body string
		at   int // the offset of the first bad byte; -1: not a UTF-8 error
	}{
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}", 54},
		{"{\"model\":\"m\",\"user\":\"\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 21},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", 51},
		{"\xef\xbb\xbf{}", -1}, // a byte-order mark is valid UTF-8 but not JSON
	} {
		if tt.at >= 0 && tt.at != strings.IndexFunc(tt.body, func(r rune) bool { return r == utf8.RuneError }) {
			t.Fatalf("test case %q: the first bad byte is not at %d", tt.body, tt.at)
		}
		_, err := ParseRequest(ChatCompletions, []byte(tt.body))
		re, ok := err.(*RequestError)
		if !ok {
			t.Fatalf("ParseRequest(%q) error %v, want a *RequestError", tt.body, err)
		}
		if tt.at >= 0 && (!strings.Contains(re.Message, "UTF-8") || !strings.Contains(re.Message, fmt.Sprintf("offset %d", tt.at))) {
			t.Errorf("ParseRequest(%q): %q, want UTF-8 at offset %d", tt.body, re.Message, tt.at)
		}
	}
	mustParse(t, ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"\ud800 caf\u00e9"}]}`)
}

// background: true is read on Responses only, as the request says it.
func TestBackgroundIsRead(t *testing.T) {
	for _, c := range []struct {
		ep   Endpoint
		body string
		want bool
	}{
		{Responses, `{"model":"m","input":"hi","background":true}`, true},
		{Responses, `{"model":"m","input":"hi","background":false,"stream":true}`, false},
		{Responses, `{"model":"m","input":"hi","background":null}`, false},
		{Responses, `{"model":"m","input":"hi"}`, false},
		{ChatCompletions, `{"model":"m","messages":[{"role":"user","content":"hi"}],"background":true}`, false},
	} {
		r, err := ParseRequest(c.ep, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if r.Background != c.want {
			t.Errorf("%s: Background %v, want %v", c.body, r.Background, c.want)
		}
	}
}
