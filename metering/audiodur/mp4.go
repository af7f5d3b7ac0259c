package audiodur

import (
	"encoding/binary"
	"io"
	"time"
)

// MP4 limits: the boxes walked in all (top level, moov, trak and mdia
// together). A box is skipped by its size, never read, so an mdat before the
// moov (a file not "fast-started") costs one 8- or 16-byte header read.
const maxMP4Boxes = 512

// box is an ISO BMFF box header.
type box struct {
	typ        string
	start, end int64 // the box's content: after its header, to its end
}

// boxes walks the boxes between start and end, calling fn for each until it
// returns true (found) or an error.
func mp4Boxes(rd *reader, start, end int64, budget *int, fn func(b box) (bool, error)) (bool, error) {
	for off := start; off+8 <= end; {
		if *budget--; *budget < 0 {
			return false, fail(MP4, "more than %d boxes before the duration", maxMP4Boxes)
		}
		h, err := rd.full(off, 8, "box header")
		if err != nil {
			return false, err
		}
		n := int64(binary.BigEndian.Uint32(h))
		b := box{typ: string(h[4:8]), start: off + 8}
		switch n {
		case 0: // to the end of the enclosing box (or file)
			n = end - off
		case 1: // a 64-bit size follows
			l, err := rd.full(off+8, 8, "box header")
			if err != nil {
				return false, err
			}
			u := binary.BigEndian.Uint64(l)
			if u > uint64(end-off) {
				return false, fail(MP4, "box %q is larger than what holds it", b.typ)
			}
			n, b.start = int64(u), off+16
		}
		if n < b.start-off || n > end-off {
			return false, fail(MP4, "box %q has an invalid size", b.typ)
		}
		b.end = off + n
		found, err := fn(b)
		if found || err != nil {
			return found, err
		}
		off = b.end
	}
	return false, nil
}

// MP4Duration reads an ISO BMFF (M4A, MP4, MOV) file's duration: moov's mvhd
// duration over its timescale; when mvhd leaves it unknown (0 or all ones),
// the longest track's mdhd. The moov box may be anywhere at the top level,
// before or after mdat: boxes are skipped by their size, so the file needs to
// be at hand whole (an io.ReaderAt over it). A fragmented MP4 whose moov
// declares no duration is an error.
func MP4Duration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, MP4)
	budget := maxMP4Boxes
	var d time.Duration
	found, err := mp4Boxes(rd, 0, size, &budget, func(b box) (bool, error) {
		if b.typ != "moov" {
			return false, nil
		}
		var err error
		d, err = moovDuration(rd, b, &budget)
		return true, err
	})
	switch {
	case err != nil:
		return 0, err
	case !found:
		return 0, fail(MP4, "no moov box")
	}
	return d, nil
}

func moovDuration(rd *reader, moov box, budget *int) (time.Duration, error) {
	var best time.Duration
	var bestOK bool
	_, err := mp4Boxes(rd, moov.start, moov.end, budget, func(b box) (bool, error) {
		switch b.typ {
		case "mvhd":
			d, ok, err := headerDuration(rd, b)
			if err != nil {
				return false, err
			}
			if ok {
				best, bestOK = d, true
				return true, nil
			}
		case "trak":
			_, err := mp4Boxes(rd, b.start, b.end, budget, func(m box) (bool, error) {
				if m.typ != "mdia" {
					return false, nil
				}
				return mp4Boxes(rd, m.start, m.end, budget, func(h box) (bool, error) {
					if h.typ != "mdhd" {
						return false, nil
					}
					d, ok, err := headerDuration(rd, h)
					if ok && d > best {
						best, bestOK = d, true
					}
					return true, err
				})
			})
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return 0, err
	}
	if !bestOK {
		return 0, fail(MP4, "neither mvhd nor any track's mdhd gives a duration")
	}
	return best, nil
}

// headerDuration reads an mvhd or mdhd box: version 0 has 32-bit times and
// duration, version 1 64-bit ones; both then a 32-bit timescale. ok is false
// for a duration left unknown (0 or all ones).
func headerDuration(rd *reader, b box) (time.Duration, bool, error) {
	v, err := rd.full(b.start, 1, b.typ)
	if err != nil {
		return 0, false, err
	}
	var scale, dur uint64
	switch v[0] {
	case 0:
		h, err := rd.full(b.start, 20, b.typ)
		if err != nil {
			return 0, false, err
		}
		scale, dur = uint64(binary.BigEndian.Uint32(h[12:])), uint64(binary.BigEndian.Uint32(h[16:]))
		if dur == 0xFFFFFFFF {
			dur = 0
		}
	case 1:
		h, err := rd.full(b.start, 32, b.typ)
		if err != nil {
			return 0, false, err
		}
		scale, dur = uint64(binary.BigEndian.Uint32(h[20:])), binary.BigEndian.Uint64(h[24:])
		if dur == ^uint64(0) {
			dur = 0
		}
	default:
		return 0, false, fail(MP4, "%s has unknown version %d", b.typ, v[0])
	}
	if scale == 0 {
		return 0, false, fail(MP4, "%s's timescale is 0", b.typ)
	}
	if dur == 0 {
		return 0, false, nil
	}
	d, ok := samplesDuration(dur, scale)
	if !ok {
		return 0, false, fail(MP4, "the duration is beyond %v", MaxDuration)
	}
	return d, true, nil
}
