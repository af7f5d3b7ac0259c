// Package audiotest writes small, valid audio files for tests of what reads
// their duration (audiodur) or uploads them (the transcription endpoints, the
// mock upstream): a PCM WAV and a constant-bitrate MP3, their headers written
// by hand and their audio a byte pattern.
package audiotest

import (
	"bytes"
	"encoding/binary"
	"time"
)

// WAV is a 16-bit PCM WAV of samples samples per channel, with a LIST chunk
// (of odd size, so padded) before fmt for a parser to walk over.
func WAV(rate, channels, samples int) []byte {
	var b bytes.Buffer
	data := samples * channels * 2
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(4+8+4+8+16+8+data))
	b.WriteString("WAVE")
	b.WriteString("LIST")
	_ = binary.Write(&b, le, uint32(3))
	b.WriteString("abc\x00")
	b.WriteString("fmt ")
	_ = binary.Write(&b, le, uint32(16))
	_ = binary.Write(&b, le, uint16(1)) // PCM
	_ = binary.Write(&b, le, uint16(channels))
	_ = binary.Write(&b, le, uint32(rate))
	_ = binary.Write(&b, le, uint32(rate*channels*2)) // byte rate
	_ = binary.Write(&b, le, uint16(channels*2))
	_ = binary.Write(&b, le, uint16(16))
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(data))
	for i := range data {
		b.WriteByte(byte(i * 7))
	}
	return b.Bytes()
}

// MP3FrameBytes is the size of MP3Frame's frames.
const MP3FrameBytes = 417

// MP3Frame is one MPEG-1 Layer III frame at 128 kbit/s, 44.1 kHz, stereo, no
// padding, its payload filled by fill (nil: zeros).
func MP3Frame(fill func(frame []byte)) []byte {
	f := make([]byte, MP3FrameBytes)
	copy(f, []byte{0xFF, 0xFB, 0x90, 0x00})
	if fill != nil {
		fill(f)
	}
	return f
}

// ID3v2 is an ID3v2.4 tag of n bytes of padding.
func ID3v2(n int) []byte {
	h := []byte{'I', 'D', '3', 4, 0, 0, byte(n >> 21 & 0x7F), byte(n >> 14 & 0x7F), byte(n >> 7 & 0x7F), byte(n & 0x7F)}
	return append(h, make([]byte, n)...)
}

// MP3CBR is an ID3v2 tag, frames MP3Frame frames, then an ID3v1 tag.
func MP3CBR(frames int) []byte {
	b := ID3v2(100)
	for range frames {
		b = append(b, MP3Frame(nil)...)
	}
	tag := make([]byte, 128)
	copy(tag, "TAG")
	return append(b, tag...)
}

// MP3CBRDuration is the duration of MP3CBR(frames): its frames' bytes at 128 kbit/s.
func MP3CBRDuration(frames int) time.Duration {
	return time.Duration(int64(frames) * MP3FrameBytes * 8 * int64(time.Second) / 128000)
}
