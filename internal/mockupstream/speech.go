package mockupstream

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// speechFormats are the audio formats of POST /v1/audio/speech: the Content-Type
// OpenAI sends and the first bytes of such a file.
var speechFormats = map[string]struct {
	contentType string
	magic       []byte
}{
	"mp3":  {"audio/mpeg", []byte("ID3\x04\x00\x00\x00\x00\x00\x00")},
	"opus": {"audio/opus", []byte("OggS\x00\x02")},
	"aac":  {"audio/aac", []byte{0xff, 0xf1, 0x50, 0x80}},
	"flac": {"audio/flac", []byte("fLaC")},
	"wav":  {"audio/wav", wavHeader()},
	"pcm":  {"audio/pcm", nil},
}

// wavHeader is a 44-byte PCM WAV header (24 kHz mono 16-bit) of unknown length,
// as OpenAI streams WAV.
func wavHeader() []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(0xffffffff))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(24000), uint32(48000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(0xffffffff))
	return b.Bytes()
}

// SpeechChunkBytes is the size of each chunk of audio the mock writes, and
// SpeechBytesPerChar how much audio it makes per input character.
const (
	SpeechChunkBytes   = 1024
	SpeechBytesPerChar = 64
)

// speech answers POST /v1/audio/speech with bytes of the requested format
// (default mp3), SpeechBytesPerChar per input character, written in chunks of
// SpeechChunkBytes (EventDelay apart), chunked, as OpenAI streams audio.
func (s *Server) speech(x *exchange) error {
	var req struct {
		Model          string `json:"model"`
		Input          string `json:"input"`
		Voice          any    `json:"voice"`
		ResponseFormat string `json:"response_format"`
	}
	if e := decodeRequest(x.body, &req); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if e := missingModel(req.Model); e != nil {
		return x.writeError(http.StatusBadRequest, *e)
	}
	if req.Input == "" {
		return x.writeError(http.StatusBadRequest, *missingParam("input"))
	}
	if req.Voice == nil {
		return x.writeError(http.StatusBadRequest, *missingParam("voice"))
	}
	if req.ResponseFormat == "" {
		req.ResponseFormat = "mp3"
	}
	f, ok := speechFormats[req.ResponseFormat]
	if !ok {
		return x.writeError(http.StatusBadRequest, apiError{Message: "Invalid value for 'response_format': " + strconv.Quote(req.ResponseFormat) + ".",
			Type: "invalid_request_error", Param: "response_format", Code: "invalid_value"})
	}
	audio := make([]byte, max(len(f.magic), utf8.RuneCountInString(req.Input)*SpeechBytesPerChar))
	copy(audio, f.magic)
	for i := len(f.magic); i < len(audio); i++ {
		audio[i] = byte(i * 31)
	}
	h := x.w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("X-Request-Id", newID("req_"))
	x.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(x.w)
	for len(audio) > 0 {
		n := min(SpeechChunkBytes, len(audio))
		if _, err := x.w.Write(audio[:n]); err != nil {
			return errClientGone
		}
		_ = rc.Flush()
		audio = audio[n:]
		if len(audio) > 0 && x.b.EventDelay > 0 {
			time.Sleep(x.b.EventDelay)
		}
	}
	return nil
}
