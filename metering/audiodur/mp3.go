package audiodur

import (
	"encoding/binary"
	"io"
	"time"
)

// MP3 limits: how far past the ID3v2 tags the first frame is looked for, and
// how many candidate sync words are tried there (each checked against the next
// frame's header, so a false sync in junk is not taken for the stream).
const (
	maxMP3SyncScan   = 64 << 10
	maxMP3Candidates = 256
)

// mpegFrame is what an MPEG audio frame header says.
type mpegFrame struct {
	mpeg1, mono     bool
	layer           int // 1, 2 or 3
	bitrate         int // bits per second
	sampleRate      int
	samplesPerFrame int
	length          int // bytes, header included
}

var (
	mp3Bitrates = [2][3][15]int{ // [MPEG-1?][layer-1][index], kbit/s
		{ // MPEG-2 and 2.5
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
			{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		},
		{ // MPEG-1
			{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
			{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
			{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
		},
	}
	mp3SampleRates = [4][3]int{ // [version bits][index]
		{11025, 12000, 8000}, // MPEG-2.5
		{},                   // reserved
		{22050, 24000, 16000},
		{44100, 48000, 32000},
	}
)

// parseMPEGHeader decodes a 4-byte frame header; ok is false for anything
// that is not a valid header with a known bitrate (free format is refused).
func parseMPEGHeader(h []byte) (mpegFrame, bool) {
	if len(h) < 4 || h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return mpegFrame{}, false
	}
	version := int(h[1]>>3) & 3
	layerBits := int(h[1]>>1) & 3
	brIndex := int(h[2] >> 4)
	srIndex := int(h[2]>>2) & 3
	if version == 1 || layerBits == 0 || brIndex == 0 || brIndex == 15 || srIndex == 3 {
		return mpegFrame{}, false
	}
	f := mpegFrame{mpeg1: version == 3, layer: 4 - layerBits, mono: h[3]>>6 == 3}
	v := 0
	if f.mpeg1 {
		v = 1
	}
	f.bitrate = mp3Bitrates[v][f.layer-1][brIndex] * 1000
	f.sampleRate = mp3SampleRates[version][srIndex]
	pad := int(h[2]>>1) & 1
	switch {
	case f.layer == 1:
		f.samplesPerFrame = 384
		f.length = (12*f.bitrate/f.sampleRate + pad) * 4
	case f.layer == 3 && !f.mpeg1:
		f.samplesPerFrame = 576
		f.length = 72*f.bitrate/f.sampleRate + pad
	default:
		f.samplesPerFrame = 1152
		f.length = 144*f.bitrate/f.sampleRate + pad
	}
	return f, f.length >= 4
}

// MP3Duration reads an MPEG audio file's duration. ID3v2 tags are skipped; the
// first frame is the first sync word (within 64 KiB) whose next frame, when the
// file holds it, also begins with a valid header. A Xing/Info or VBRI header in
// that frame gives the frame count (VBR files); otherwise the file is taken to
// be constant bitrate, its duration the data after the first frame's start (an
// ID3v1 tag at the end excluded) over the first frame's bitrate.
func MP3Duration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, MP3)
	start, err := skipID3(rd)
	if err != nil {
		return 0, err
	}
	if start >= size {
		return 0, fail(MP3, "the file ends inside its ID3v2 tag")
	}
	scan, err := rd.at(start, maxMP3SyncScan+4)
	if err != nil {
		return 0, err
	}
	candidates := 0
	for i := 0; i+4 <= len(scan); i++ {
		f, ok := parseMPEGHeader(scan[i : i+4])
		if !ok {
			continue
		}
		if candidates++; candidates > maxMP3Candidates {
			break
		}
		off := start + int64(i)
		if next := off + int64(f.length); next+4 <= size {
			h, err := rd.at(next, 4)
			if err != nil {
				return 0, err
			}
			if g, ok := parseMPEGHeader(h); !ok || g.sampleRate != f.sampleRate || g.layer != f.layer {
				continue
			}
		}
		return mp3FromFrame(rd, off, f, size)
	}
	return 0, fail(MP3, "no MPEG audio frame in the first %d bytes after the ID3 tags", maxMP3SyncScan)
}

// mp3FromFrame reads the duration from the first frame at off.
func mp3FromFrame(rd *reader, off int64, f mpegFrame, size int64) (time.Duration, error) {
	frame, err := rd.at(off, min(f.length, 512))
	if err != nil {
		return 0, err
	}
	side := 32 // side information after the header: Xing/Info follows it
	switch {
	case f.mpeg1 && f.mono:
		side = 17
	case !f.mpeg1 && !f.mono:
		side = 17
	case !f.mpeg1 && f.mono:
		side = 9
	}
	var frames uint32
	var found bool
	if x := 4 + side; x+12 <= len(frame) && (string(frame[x:x+4]) == "Xing" || string(frame[x:x+4]) == "Info") {
		if flags := binary.BigEndian.Uint32(frame[x+4:]); flags&1 != 0 {
			frames, found = binary.BigEndian.Uint32(frame[x+8:]), true
		}
	} else if v := 4 + 32; v+18 <= len(frame) && string(frame[v:v+4]) == "VBRI" {
		frames, found = binary.BigEndian.Uint32(frame[v+14:]), true
	}
	if found {
		if frames == 0 {
			return 0, fail(MP3, "its VBR header counts 0 frames")
		}
		d, ok := samplesDuration(uint64(frames)*uint64(f.samplesPerFrame), uint64(f.sampleRate))
		if !ok {
			return 0, fail(MP3, "the duration is beyond %v", MaxDuration)
		}
		return d, nil
	}
	end := size
	if tag, err := rd.at(size-128, 3); err == nil && string(tag) == "TAG" && size-128 >= off {
		end = size - 128
	}
	d, ok := samplesDuration(uint64(end-off)*8, uint64(f.bitrate))
	if !ok {
		return 0, fail(MP3, "the duration is beyond %v", MaxDuration)
	}
	return d, nil
}
