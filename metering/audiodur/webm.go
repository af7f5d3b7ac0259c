package audiodur

import (
	"encoding/binary"
	"errors"
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
	idTimecode      = 0xE7 // a Cluster's timestamp, in TimecodeScale units
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
	idBlockDuration = 0x9B
)

// The walk of a WebM without a Duration: at most MaxWebMWalkElements element
// headers (each read whole: at most 16 bytes), MaxWebMWalkBytes in all.
const (
	MaxWebMWalkElements = 1 << 20
	MaxWebMWalkBytes    = MaxWebMWalkElements * 16
)

// maxWebMElements is how many elements WebMDuration walks (the EBML header's
// children are skipped whole; Segment's children and Info's are counted).
const maxWebMElements = 256

// errTruncated is an element header cut off by the file's end.
var errTruncated = &Error{Format: WebM, Reason: "the file ends inside an element header"}

// unknownSize marks an EBML element whose size is left unknown (all ones).
const unknownSize = -1

// ebmlElement reads an element header at off: its ID, its content's start and
// its size (unknownSize when unknown).
func ebmlElement(rd *reader, off int64) (id uint32, start, size int64, err error) {
	h, err := rd.at(off, 12)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(h) == 0 {
		return 0, 0, 0, errTruncated
	}
	if h[0] == 0 {
		return 0, 0, 0, fail(WebM, "an invalid element ID at offset %d", off)
	}
	idLen := 1
	for h[0]&(0x80>>(idLen-1)) == 0 {
		idLen++
	}
	if idLen > 4 {
		return 0, 0, 0, fail(WebM, "an invalid element ID at offset %d", off)
	}
	if len(h) < idLen+1 {
		return 0, 0, 0, errTruncated
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
		return 0, 0, 0, errTruncated
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
// browser's MediaRecorder output — is timed by its last block instead: the
// Segment's Clusters (of known or unknown size) are walked, block header by
// block header, to the largest Cluster Timecode + block timecode (+ its
// BlockDuration when given), within MaxWebMWalkElements.
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
			d, scale, ok, err := webmInfo(rd, start, min(start+n, end), &budget)
			if err != nil || ok {
				return d, err
			}
			return webmWalk(rd, start+n, end, scale)
		case id == idCluster:
			return 0, fail(WebM, "a Cluster before Info")
		case n == unknownSize:
			return 0, fail(WebM, "an element of unknown size before Info")
		}
		off = start + n
	}
	return 0, fail(WebM, "no Info element in the Segment")
}

// webmInfo reads Info: the duration, or ok false when it gives none (then the
// TimecodeScale, for the walk).
func webmInfo(rd *reader, start, end int64, budget *int) (d time.Duration, scale uint64, ok bool, err error) {
	d, scale, err = webmInfoFields(rd, start, end, budget)
	var e *Error
	if errors.As(err, &e) && e.Reason == noDuration {
		return 0, scale, false, nil
	}
	return d, scale, err == nil, err
}

const noDuration = "Info has no Duration"

func webmInfoFields(rd *reader, start, end int64, budget *int) (time.Duration, uint64, error) {
	scale := uint64(1_000_000)
	duration := math.NaN()
	for off := start; off < end; {
		if *budget--; *budget < 0 {
			return 0, 0, fail(WebM, "more than %d elements", maxWebMElements)
		}
		id, s, n, err := ebmlElement(rd, off)
		if err != nil {
			return 0, 0, err
		}
		if n == unknownSize || n > end-s {
			return 0, 0, fail(WebM, "an Info element runs past Info")
		}
		switch id {
		case idTimecodeScale:
			if n < 1 || n > 8 {
				return 0, 0, fail(WebM, "TimecodeScale is %d bytes", n)
			}
			b, err := rd.full(s, int(n), "TimecodeScale")
			if err != nil {
				return 0, 0, err
			}
			scale = 0
			for _, c := range b {
				scale = scale<<8 | uint64(c)
			}
		case idDuration:
			b, err := rd.full(s, int(n), "Duration")
			if err != nil {
				return 0, 0, err
			}
			switch n {
			case 4:
				duration = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
			case 8:
				duration = math.Float64frombits(binary.BigEndian.Uint64(b))
			default:
				return 0, 0, fail(WebM, "Duration is %d bytes, not a float", n)
			}
		}
		off = s + n
	}
	switch {
	case scale == 0:
		return 0, 0, fail(WebM, "TimecodeScale is 0")
	case math.IsNaN(duration):
		return 0, scale, fail(WebM, noDuration)
	case duration < 0 || math.IsInf(duration, 0):
		return 0, 0, fail(WebM, "Duration is %v", duration)
	}
	ns := duration * float64(scale)
	if ns > float64(MaxDuration) {
		return 0, 0, fail(WebM, "the duration is beyond %v", MaxDuration)
	}
	return time.Duration(math.Ceil(ns)), scale, nil
}

// webmWalk times a Segment without a Duration by its blocks, from off (after
// Info) to end.
func webmWalk(rd *reader, off, end int64, scale uint64) (time.Duration, error) {
	rd.budget = MaxWebMWalkBytes
	var cluster, last uint64 // the Cluster's timecode; the latest block end seen
	var blocks int
	var groupEnd int64 // the end of the BlockGroup being read (0: none)
	var groupStart uint64
	for elements := 0; off < end; elements++ {
		if elements >= MaxWebMWalkElements {
			return 0, fail(WebM, "no Duration, and more than %d elements to walk for the last block", MaxWebMWalkElements)
		}
		id, start, n, err := ebmlElement(rd, off)
		if err != nil {
			if blocks > 0 && errors.Is(err, errTruncated) {
				break // a recording cut mid-element: time it by what came before
			}
			return 0, err
		}
		if groupEnd > 0 && start > groupEnd {
			groupEnd = 0
		}
		switch id {
		case idCluster, idBlockGroup: // walk into them, whatever their size
			if id == idBlockGroup && n != unknownSize {
				groupEnd = start + n
			}
			off = start
			continue
		case idTimecode:
			v, err := ebmlUint(rd, start, n)
			if err != nil {
				return 0, err
			}
			cluster = v
		case idSimpleBlock, idBlock:
			if n == unknownSize || start+min(n, 12) > rd.size {
				if blocks > 0 {
					off = end // a recording cut mid-block: time it by what came before
					continue
				}
				return 0, fail(WebM, "the file ends inside its first block")
			}
			if n < 3 {
				return 0, fail(WebM, "a block of %d bytes", n)
			}
			h, err := rd.full(start, min(int(n), 12), "block header")
			if err != nil {
				return 0, err
			}
			l := vintLen(h[0])
			if l == 0 || len(h) < l+2 {
				return 0, fail(WebM, "a block header is invalid")
			}
			rel := int64(int16(binary.BigEndian.Uint16(h[l:])))
			t := max(int64(cluster)+rel, 0)
			groupStart = uint64(t)
			last = max(last, uint64(t))
			blocks++
		case idBlockDuration:
			v, err := ebmlUint(rd, start, n)
			if err != nil {
				return 0, err
			}
			if groupEnd > 0 {
				last = max(last, groupStart+v)
			}
		}
		if n == unknownSize {
			return 0, fail(WebM, "an element of unknown size inside a Cluster")
		}
		off = start + n
	}
	if blocks == 0 {
		return 0, fail(WebM, "%s and no blocks to time it by", noDuration)
	}
	ns := float64(last) * float64(scale)
	if ns > float64(MaxDuration) {
		return 0, fail(WebM, "the duration is beyond %v", MaxDuration)
	}
	return time.Duration(ns), nil
}

// ebmlUint reads an unsigned integer element's content.
func ebmlUint(rd *reader, start, n int64) (uint64, error) {
	if n < 0 || n > 8 {
		return 0, fail(WebM, "an integer element of %d bytes", n)
	}
	b, err := rd.full(start, int(n), "integer element")
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// vintLen is the length of an EBML variable-size integer from its first byte
// (0: invalid).
func vintLen(b byte) int {
	for l := 1; l <= 8; l++ {
		if b&(0x80>>(l-1)) != 0 {
			return l
		}
	}
	return 0
}
