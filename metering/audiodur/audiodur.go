// Package audiodur reads the duration of an audio file from its own header or
// index, as a transcription is billed per minute of audio: WAV (RIFF fmt and
// data size), MP3 (a Xing/Info or VBRI frame count, else the first frame's
// bitrate over the data size), M4A/MP4 (moov's mvhd, else the longest mdhd),
// Ogg Opus and Vorbis (the last page's granule position), WebM/Matroska
// (Segment Info Duration × TimecodeScale) and FLAC (STREAMINFO). Each parser
// reads through an io.ReaderAt only the bytes it needs — never the audio
// itself — within MaxReadBytes in all and a bounded number of boxes, chunks,
// pages or elements, so a hostile file costs little (one exception: a WebM
// without a Duration, as a browser's MediaRecorder writes it, is timed by
// walking its blocks' headers, within MaxWebMWalkBytes); every failure is an
// *Error naming the format and what is wrong. Durations are never negative and
// never above MaxDuration.
package audiodur

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Format names a container format.
type Format string

// The formats this package reads.
const (
	WAV  Format = "wav"
	MP3  Format = "mp3"
	MP4  Format = "mp4"
	Ogg  Format = "ogg"
	WebM Format = "webm"
	FLAC Format = "flac"
)

// Limits common to every parser.
const (
	// MaxReadBytes is the most a parser reads of a file, in all. The largest
	// single read is an Ogg tail (MaxOggTail); every other read is a header of
	// at most a few hundred bytes.
	MaxReadBytes = 256 << 10
	// MaxDuration is the longest duration reported; beyond it a header is
	// taken to be corrupt (a transcription upload of 25 MB holds hours, not
	// days).
	MaxDuration = 1000 * time.Hour
	// maxID3Tags is how many stacked ID3v2 tags are skipped before MP3/FLAC data.
	maxID3Tags = 4
)

// ErrUnknownFormat is returned by Duration for a file in none of the formats.
var ErrUnknownFormat = errors.New("audiodur: not a WAV, MP3, M4A/MP4, OGG (Opus or Vorbis), WebM/Matroska or FLAC file")

// Error is a file of a known format whose duration cannot be read.
type Error struct {
	Format Format
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("audiodur: %s: %s", e.Format, e.Reason) }

func fail(f Format, format string, args ...any) error {
	return &Error{Format: f, Reason: fmt.Sprintf(format, args...)}
}

// Duration sniffs the format of the size-byte file r and reads its duration.
func Duration(r io.ReaderAt, size int64) (time.Duration, Format, error) {
	f, err := Sniff(r, size)
	if err != nil {
		return 0, "", err
	}
	var d time.Duration
	switch f {
	case WAV:
		d, err = WAVDuration(r, size)
	case MP3:
		d, err = MP3Duration(r, size)
	case MP4:
		d, err = MP4Duration(r, size)
	case Ogg:
		d, err = OggDuration(r, size)
	case WebM:
		d, err = WebMDuration(r, size)
	case FLAC:
		d, err = FLACDuration(r, size)
	}
	return d, f, err
}

// Sniff tells the format from the file's first bytes (after any ID3v2 tags,
// which precede MP3 and sometimes FLAC data).
func Sniff(r io.ReaderAt, size int64) (Format, error) {
	rd := newReader(r, size, "")
	head, _ := rd.at(0, 12)
	switch {
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return WAV, nil
	case len(head) >= 4 && string(head[:4]) == "fLaC":
		return FLAC, nil
	case len(head) >= 4 && string(head[:4]) == "OggS":
		return Ogg, nil
	case len(head) >= 4 && binary.BigEndian.Uint32(head) == idEBML:
		return WebM, nil
	case len(head) >= 8 && isMP4Box(string(head[4:8])):
		return MP4, nil
	}
	off, err := skipID3(rd)
	if err != nil {
		return "", ErrUnknownFormat
	}
	b, _ := rd.at(off, 4)
	switch {
	case len(b) == 4 && string(b) == "fLaC":
		return FLAC, nil
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return MP3, nil
	case off > 0:
		return MP3, nil // an ID3 tag: MP3 data, perhaps after some junk
	}
	return "", ErrUnknownFormat
}

func isMP4Box(t string) bool {
	switch t {
	case "ftyp", "moov", "mdat", "free", "skip", "wide":
		return true
	}
	return false
}

// reader reads parts of a file within MaxReadBytes in all.
type reader struct {
	r      io.ReaderAt
	size   int64
	format Format
	read   int64
	budget int64 // MaxReadBytes, or more for a walk that allows it
}

func newReader(r io.ReaderAt, size int64, f Format) *reader {
	return &reader{r: r, size: max(size, 0), format: f, budget: MaxReadBytes}
}

// at reads up to n bytes at off (fewer at the end of the file). It fails past
// the read budget, or when the reader fails other than at its end.
func (rd *reader) at(off int64, n int) ([]byte, error) {
	if off < 0 || off >= rd.size || n <= 0 {
		return nil, nil
	}
	if int64(n) > rd.size-off {
		n = int(rd.size - off)
	}
	if rd.read+int64(n) > rd.budget {
		return nil, fail(rd.format, "the header is spread over more than %d bytes", rd.budget)
	}
	rd.read += int64(n)
	b := make([]byte, n)
	got, err := rd.r.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:got], nil
}

// full reads exactly n bytes at off, or fails saying what was cut short.
func (rd *reader) full(off int64, n int, what string) ([]byte, error) {
	b, err := rd.at(off, n)
	if err != nil {
		return nil, err
	}
	if len(b) < n {
		return nil, fail(rd.format, "the file ends inside its %s", what)
	}
	return b, nil
}

// skipID3 returns the offset past the ID3v2 tags at the start of the file.
func skipID3(rd *reader) (int64, error) {
	var off int64
	for range maxID3Tags {
		h, err := rd.at(off, 10)
		if err != nil {
			return 0, err
		}
		if len(h) < 10 || string(h[:3]) != "ID3" {
			return off, nil
		}
		if (h[6]|h[7]|h[8]|h[9])&0x80 != 0 {
			return 0, fail(MP3, "an ID3v2 tag's size is not a syncsafe integer")
		}
		n := int64(h[6])<<21 | int64(h[7])<<14 | int64(h[8])<<7 | int64(h[9])
		off += 10 + n
		if h[5]&0x10 != 0 { // a footer
			off += 10
		}
	}
	return off, nil
}

// samplesDuration is samples / rate seconds, computed without overflow; ok is
// false beyond MaxDuration or for a zero rate.
func samplesDuration(samples, rate uint64) (time.Duration, bool) {
	if rate == 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(samples, uint64(time.Second))
	if hi >= rate {
		return 0, false
	}
	q, _ := bits.Div64(hi, lo, rate)
	if q > uint64(MaxDuration) {
		return 0, false
	}
	return time.Duration(q), true
}

// index is bytes.Index, named for the parsers' scans.
func index(b []byte, s string) int { return bytes.Index(b, []byte(s)) }
