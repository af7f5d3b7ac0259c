package audiodur

import (
	"encoding/binary"
	"io"
	"time"
)

// maxWAVChunks is how many RIFF chunks WAVDuration walks looking for "fmt "
// and "data" (LIST, fact, bext… may come first).
const maxWAVChunks = 64

// WAVDuration reads a RIFF/WAVE file's duration: its data chunk's size over
// the byte rate of its fmt chunk. A data chunk whose declared size runs past
// the file (a recorder that never wrote it back, 0 or 0xFFFFFFFF) counts the
// bytes the file holds.
func WAVDuration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, WAV)
	h, err := rd.full(0, 12, "RIFF header")
	if err != nil {
		return 0, err
	}
	if string(h[:4]) != "RIFF" || string(h[8:12]) != "WAVE" {
		return 0, fail(WAV, "not a RIFF/WAVE file")
	}
	var byteRate uint32
	off := int64(12)
	for range maxWAVChunks {
		c, err := rd.full(off, 8, "chunk headers before the data chunk")
		if err != nil {
			return 0, err
		}
		id, n := string(c[:4]), int64(binary.LittleEndian.Uint32(c[4:8]))
		body := off + 8
		switch id {
		case "fmt ":
			f, err := rd.full(body, 16, "fmt chunk")
			if err != nil {
				return 0, err
			}
			byteRate = binary.LittleEndian.Uint32(f[8:12])
			if byteRate == 0 {
				return 0, fail(WAV, "the fmt chunk's byte rate is 0")
			}
		case "data":
			if byteRate == 0 {
				return 0, fail(WAV, "the data chunk comes before any fmt chunk")
			}
			if held := size - body; n == 0 || n > held {
				n = max(held, 0)
			}
			d, ok := samplesDuration(uint64(n), uint64(byteRate))
			if !ok {
				return 0, fail(WAV, "the duration is beyond %v", MaxDuration)
			}
			return d, nil
		}
		off = body + n + n&1 // chunks are padded to an even size
	}
	return 0, fail(WAV, "no data chunk in the first %d chunks", maxWAVChunks)
}
