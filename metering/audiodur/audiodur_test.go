package audiodur

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r    io.ReaderAt
	read int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

func TestDuration(t *testing.T) {
	bigMDAT := append(makeM4A(false, 44100, 44100*90), make([]byte, 0)...)
	tests := []struct {
		name   string
		file   []byte
		format Format
		want   time.Duration
	}{
		{"wav 16 kHz mono 2.5 s", makeWAV(16000, 1, 40000), WAV, 2500 * time.Millisecond},
		{"wav 44.1 kHz stereo 1 s", makeWAV(44100, 2, 44100), WAV, time.Second},
		{"mp3 cbr, id3v2 and id3v1", makeMP3CBR(40), MP3, time.Duration(40 * 417 * 8 * int64(time.Second) / 128000)},
		{"mp3 xing vbr", makeMP3Xing(2297, "Xing"), MP3, time.Duration(2297 * 1152 * int64(time.Second) / 44100)},
		{"mp3 info (lame cbr)", makeMP3Xing(100, "Info"), MP3, time.Duration(100 * 1152 * int64(time.Second) / 44100)},
		{"mp3 vbri", makeMP3VBRI(383), MP3, time.Duration(383 * 1152 * int64(time.Second) / 44100)},
		{"m4a moov first, mvhd", makeM4A(true, 1000, 61500), MP4, 61500 * time.Millisecond},
		{"m4a moov after mdat", bigMDAT, MP4, 90 * time.Second},
		{"m4a mvhd unknown, longest mdhd", makeM4A(true, 48000, 0, 48000*3, 48000*7), MP4, 7 * time.Second},
		{"mp4 mvhd version 1", append(mp4Box("ftyp", []byte("isom")), mp4Box("moov", mp4Box("mvhd", fullBoxV1(600, 600*42)))...), MP4, 42 * time.Second},
		{"ogg opus, pre-skip", makeOpus(48000*5 + 312), Ogg, 5 * time.Second},
		{"ogg vorbis 44.1 kHz", makeVorbis(44100, 44100*3/2), Ogg, 1500 * time.Millisecond},
		{"webm ms scale", makeWebM(12345.5, 1_000_000), WebM, 12345500 * time.Microsecond},
		{"webm µs scale", makeWebM(2_000_000, 1000), WebM, 2 * time.Second},
		{"webm live recording: walked to its last block", makeLiveWebM(
			unknownCluster(0, simpleBlock(0, 50), simpleBlock(20, 50)),
			unknownCluster(4980, simpleBlock(0, 50), simpleBlock(20, 50))), WebM, 5 * time.Second},
		{"webm live recording: last BlockGroup's duration", makeLiveWebM(
			unknownCluster(1000, simpleBlock(0, 10)),
			unknownCluster(3000, ebml(idBlockGroup, ebml(idBlock, []byte{0x81, 0, 10, 0, 1, 2}), ebml(idBlockDuration, []byte{40})))), WebM, 3050 * time.Millisecond},
		{"webm live recording cut mid-block", append(makeLiveWebM(unknownCluster(0, simpleBlock(0, 10), simpleBlock(700, 10))), 0xA3, 0x90, 0x81), WebM, 700 * time.Millisecond},
		{"flac 48 kHz", makeFLAC(48000, 48000*11), FLAC, 11 * time.Second},
		{"flac after id3", append(id3v2(50), makeFLAC(44100, 441000)...), FLAC, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReaderAt{r: bytes.NewReader(tt.file)}
			got, format, err := Duration(cr, int64(len(tt.file)))
			if err != nil {
				t.Fatalf("Duration: %v", err)
			}
			if format != tt.format || got != tt.want {
				t.Errorf("Duration = %v, %s; want %v, %s", got, format, tt.want, tt.format)
			}
			if cr.read > MaxReadBytes+12+10 {
				t.Errorf("read %d bytes, beyond the bound %d", cr.read, MaxReadBytes)
			}
		})
	}
}

// TestMP4MoovAtEndReadsHeadersOnly: a 40 MB mdat before moov is skipped by its
// size, not read.
func TestMP4MoovAtEndReadsHeadersOnly(t *testing.T) {
	ftyp := mp4Box("ftyp", []byte("M4A "))
	moov := mp4Box("moov", mp4Box("mvhd", fullBoxV0(1000, 3_600_000)))
	const mdatSize = 40 << 20
	hdr := []byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0, 0, 0, 0, 0, 0, 0, 0} // 64-bit size
	for i := range 8 {
		hdr[8+i] = byte(uint64(mdatSize) >> (56 - 8*i))
	}
	file := &sparseFile{parts: [][]byte{ftyp, hdr}, gap: mdatSize - 16, tail: moov}
	cr := &countingReaderAt{r: file}
	got, err := MP4Duration(cr, file.size())
	if err != nil || got != time.Hour {
		t.Fatalf("MP4Duration = %v, %v; want 1h", got, err)
	}
	if cr.read > 200 {
		t.Errorf("read %d bytes of a %d-byte file; want only box headers", cr.read, file.size())
	}
}

// sparseFile is parts, then gap zero bytes (never stored), then tail.
type sparseFile struct {
	parts [][]byte
	gap   int64
	tail  []byte
}

func (s *sparseFile) head() []byte { return bytes.Join(s.parts, nil) }
func (s *sparseFile) size() int64  { return int64(len(s.head())) + s.gap + int64(len(s.tail)) }

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	head := s.head()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		switch {
		case pos < int64(len(head)):
			p[n] = head[pos]
		case pos < int64(len(head))+s.gap:
			p[n] = 0
		case pos < s.size():
			p[n] = s.tail[pos-int64(len(head))-s.gap]
		default:
			return n, io.EOF
		}
		n++
	}
	return n, nil
}

func TestDurationErrors(t *testing.T) {
	wavNoFmt := makeWAV(8000, 1, 10)
	copy(wavNoFmt[24:], "junk") // the fmt chunk renamed: data comes first
	flacUnknown := makeFLAC(44100, 0)
	webmLive := ebml(idEBML, ebml(0x4282, []byte("webm")))
	webmLive = append(webmLive, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	webmLive = append(webmLive, ebml(idInfo, ebml(idTimecodeScale, []byte{0x0F, 0x42, 0x40}))...)
	opusTruncated := makeOpus(48000)[:40] // inside the first page, after OpusHead began
	tests := []struct {
		name   string
		file   []byte
		format Format // "" for ErrUnknownFormat
		reason string
	}{
		{"empty", nil, "", ""},
		{"text", []byte("hello, this is not audio at all"), "", ""},
		{"wav without fmt", wavNoFmt, WAV, "before any fmt chunk"},
		{"wav truncated header", makeWAV(8000, 1, 10)[:30], WAV, "ends inside"},
		{"flac total unknown", flacUnknown, FLAC, "total number of samples"},
		{"webm live recording", webmLive, WebM, "no Duration"},
		{"webm cluster first", append(ebml(idEBML), append([]byte{0x18, 0x53, 0x80, 0x67, 0x88}, ebml(idCluster, make([]byte, 5))...)...), WebM, "Cluster before Info"},
		{"mp4 without moov", append(mp4Box("ftyp", []byte("isom")), mp4Box("mdat", make([]byte, 100))...), MP4, "no moov"},
		{"mp4 box too large", append(mp4Box("ftyp", []byte("isom")), 0, 0, 1, 0, 'm', 'o', 'o', 'v'), MP4, "invalid size"},
		{"ogg truncated", opusTruncated, Ogg, "no complete page"},
		{"ogg speex", oggPageBytes(1, 0, 0, 2, []byte("Speex   1.2")), Ogg, "neither Opus nor Vorbis"},
		{"id3 then junk", append(id3v2(20), bytes.Repeat([]byte{0x11}, 2000)...), MP3, "no MPEG audio frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, format, err := Duration(bytes.NewReader(tt.file), int64(len(tt.file)))
			if err == nil {
				t.Fatalf("Duration = %v, %s; want an error", d, format)
			}
			if tt.format == "" {
				if !errors.Is(err, ErrUnknownFormat) {
					t.Fatalf("err = %v; want ErrUnknownFormat", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Format != tt.format || !bytes.Contains([]byte(e.Reason), []byte(tt.reason)) {
				t.Fatalf("err = %#v (%v); want a %s error saying %q", err, err, tt.format, tt.reason)
			}
		})
	}
}
