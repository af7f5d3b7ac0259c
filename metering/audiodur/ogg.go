package audiodur

import (
	"bytes"
	"encoding/binary"
	"io"
	"time"
)

// Ogg limits: the tail searched backwards for the last page (the largest Ogg
// page is 65,307 bytes, so the last page begins within it), and the first
// page's size.
const (
	MaxOggTail      = 65307 + 27
	oggHeaderLen    = 27
	opusGranuleRate = 48000 // Opus granule positions count 48 kHz samples, whatever the input rate
)

// OggDuration reads an Ogg Opus or Ogg Vorbis file's duration: the granule
// position of the last page of the first logical stream (its CRC checked,
// found by searching the file's last MaxOggTail bytes backwards), less
// OpusHead's pre-skip, over 48 kHz for Opus or the Vorbis sample rate. Other
// codecs in Ogg (FLAC, Speex) are errors.
func OggDuration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, Ogg)
	first, err := rd.at(0, oggHeaderLen+255)
	if err != nil {
		return 0, err
	}
	if len(first) < oggHeaderLen {
		return 0, fail(Ogg, "the file ends inside its first page")
	}
	if string(first[:4]) != "OggS" || first[4] != 0 {
		return 0, fail(Ogg, "no Ogg page at the start")
	}
	serial := binary.LittleEndian.Uint32(first[14:])
	nseg := int(first[26])
	if len(first) < oggHeaderLen+nseg {
		return 0, fail(Ogg, "the file ends inside its first page")
	}
	packet, err := rd.at(int64(oggHeaderLen+nseg), 19)
	if err != nil {
		return 0, err
	}
	var rate, preSkip uint64
	switch {
	case len(packet) >= 12 && string(packet[:8]) == "OpusHead":
		rate, preSkip = opusGranuleRate, uint64(binary.LittleEndian.Uint16(packet[10:]))
	case len(packet) >= 16 && string(packet[:7]) == "\x01vorbis":
		rate = uint64(binary.LittleEndian.Uint32(packet[12:]))
		if rate == 0 {
			return 0, fail(Ogg, "the Vorbis sample rate is 0")
		}
	default:
		return 0, fail(Ogg, "the first stream is neither Opus nor Vorbis")
	}

	tailStart := max(0, size-MaxOggTail)
	tail, err := rd.at(tailStart, int(size-tailStart))
	if err != nil {
		return 0, err
	}
	for i := len(tail); ; {
		i = bytes.LastIndex(tail[:i], []byte("OggS"))
		if i < 0 {
			return 0, fail(Ogg, "no complete page of the stream with a granule position in the last %d bytes", MaxOggTail)
		}
		page, ok := oggPage(tail[i:])
		if !ok || binary.LittleEndian.Uint32(page[14:]) != serial {
			continue
		}
		granule := int64(binary.LittleEndian.Uint64(page[6:]))
		if granule < 0 { // -1: no packet ends on this page
			continue
		}
		samples := uint64(granule)
		if samples < preSkip {
			return 0, nil
		}
		d, ok := samplesDuration(samples-preSkip, rate)
		if !ok {
			return 0, fail(Ogg, "the duration is beyond %v", MaxDuration)
		}
		return d, nil
	}
}

// oggPage returns the page at the start of b when it is whole and its CRC
// matches.
func oggPage(b []byte) ([]byte, bool) {
	if len(b) < oggHeaderLen || b[4] != 0 {
		return nil, false
	}
	nseg := int(b[26])
	if len(b) < oggHeaderLen+nseg {
		return nil, false
	}
	n := oggHeaderLen + nseg
	for _, s := range b[oggHeaderLen : oggHeaderLen+nseg] {
		n += int(s)
	}
	if len(b) < n {
		return nil, false
	}
	page := b[:n]
	return page, oggCRC(page) == binary.LittleEndian.Uint32(page[22:])
}

var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// oggCRC is the page's checksum, computed with its CRC field as zeros.
func oggCRC(page []byte) uint32 {
	var c uint32
	for i, b := range page {
		if i >= 22 && i < 26 {
			b = 0
		}
		c = c<<8 ^ oggCRCTable[byte(c>>24)^b]
	}
	return c
}
