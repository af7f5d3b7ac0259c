package audiodur

import (
	"encoding/binary"
	"io"
	"math"
	"time"
)

// EBML element IDs read by WebMDuration (IDs keep their length marker bits).
const (
	idEBML          = 0x1A45DFA3
	idSegment       = 0x18538067
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idCluster       = 0x1F43B675
)

// maxWebMElements is how many elements WebMDuration walks (the EBML header's
// children are skipped whole; Segment's children and Info's are counted).
const maxWebMElements = 256

// unknownSize marks an EBML element whose size is left unknown (all ones).
const unknownSize = -1

// ebmlElement reads an element header at off: its ID, its content's start and
// its size (unknownSize when unknown).
func ebmlElement(rd *reader, off int64) (id uint32, start, size int64, err error) {
	h, err := rd.at(off, 12)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(h) == 0 || h[0] == 0 {
		return 0, 0, 0, fail(WebM, "an invalid element ID at offset %d", off)
	}
	idLen := 1
	for h[0]&(0x80>>(idLen-1)) == 0 {
		idLen++
	}
	if idLen > 4 || len(h) < idLen+1 {
		return 0, 0, 0, fail(WebM, "an invalid element ID at offset %d", off)
	}
	for _, b := range h[:idLen] {
		id = id<<8 | uint32(b)
	}
	s := h[idLen:]
	if s[0] == 0 {
		return 0, 0, 0, fail(WebM, "an invalid element size at offset %d", off)
	}
	sizeLen := 1
	for s[0]&(0x80>>(sizeLen-1)) == 0 {
		sizeLen++
	}
	if len(s) < sizeLen {
		return 0, 0, 0, fail(WebM, "the file ends inside an element header")
	}
	v := uint64(s[0] & (0xFF >> sizeLen))
	allOnes := v == uint64(0xFF>>sizeLen)
	for _, b := range s[1:sizeLen] {
		v = v<<8 | uint64(b)
		allOnes = allOnes && b == 0xFF
	}
	start = off + int64(idLen+sizeLen)
	if allOnes {
		return id, start, unknownSize, nil
	}
	if v > uint64(math.MaxInt64) {
		return 0, 0, 0, fail(WebM, "an element size beyond the file")
	}
	return id, start, int64(v), nil
}

// WebMDuration reads a WebM or Matroska file's duration: Segment › Info's
// Duration (a float in TimecodeScale units) times TimecodeScale nanoseconds
// (default 1,000,000). Info must come before the first Cluster, as muxers
// write it. A file whose Info has no Duration — a live recording, such as a
// browser's MediaRecorder output before it is remuxed — is an error.
func WebMDuration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, WebM)
	id, start, n, err := ebmlElement(rd, 0)
	if err != nil {
		return 0, err
	}
	if id != idEBML || n == unknownSize {
		return 0, fail(WebM, "no EBML header")
	}
	id, seg, segSize, err := ebmlElement(rd, start+n)
	if err != nil {
		return 0, err
	}
	if id != idSegment {
		return 0, fail(WebM, "no Segment after the EBML header")
	}
	end := size
	if segSize != unknownSize && seg+segSize < end {
		end = seg + segSize
	}
	budget := maxWebMElements
	for off := seg; off < end; {
		if budget--; budget < 0 {
			return 0, fail(WebM, "no Info in the first %d elements", maxWebMElements)
		}
		id, start, n, err := ebmlElement(rd, off)
		if err != nil {
			return 0, err
		}
		switch {
		case id == idInfo:
			if n == unknownSize {
				return 0, fail(WebM, "Info has an unknown size")
			}
			return webmInfo(rd, start, min(start+n, end), &budget)
		case id == idCluster:
			return 0, fail(WebM, "a Cluster before Info")
		case n == unknownSize:
			return 0, fail(WebM, "an element of unknown size before Info")
		}
		off = start + n
	}
	return 0, fail(WebM, "no Info element in the Segment")
}

func webmInfo(rd *reader, start, end int64, budget *int) (time.Duration, error) {
	scale := uint64(1_000_000)
	duration := math.NaN()
	for off := start; off < end; {
		if *budget--; *budget < 0 {
			return 0, fail(WebM, "more than %d elements", maxWebMElements)
		}
		id, s, n, err := ebmlElement(rd, off)
		if err != nil {
			return 0, err
		}
		if n == unknownSize || n > end-s {
			return 0, fail(WebM, "an Info element runs past Info")
		}
		switch id {
		case idTimecodeScale:
			if n < 1 || n > 8 {
				return 0, fail(WebM, "TimecodeScale is %d bytes", n)
			}
			b, err := rd.full(s, int(n), "TimecodeScale")
			if err != nil {
				return 0, err
			}
			scale = 0
			for _, c := range b {
				scale = scale<<8 | uint64(c)
			}
		case idDuration:
			b, err := rd.full(s, int(n), "Duration")
			if err != nil {
				return 0, err
			}
			switch n {
			case 4:
				duration = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
			case 8:
				duration = math.Float64frombits(binary.BigEndian.Uint64(b))
			default:
				return 0, fail(WebM, "Duration is %d bytes, not a float", n)
			}
		}
		off = s + n
	}
	switch {
	case math.IsNaN(duration):
		return 0, fail(WebM, "Info has no Duration (a live recording not remuxed?)")
	case scale == 0:
		return 0, fail(WebM, "TimecodeScale is 0")
	case duration < 0 || math.IsInf(duration, 0):
		return 0, fail(WebM, "Duration is %v", duration)
	}
	ns := duration * float64(scale)
	if ns > float64(MaxDuration) {
		return 0, fail(WebM, "the duration is beyond %v", MaxDuration)
	}
	return time.Duration(math.Ceil(ns)), nil
}
