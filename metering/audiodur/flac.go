package audiodur

import (
	"io"
	"time"
)

// FLACDuration reads a FLAC file's duration from its STREAMINFO block (the
// first metadata block): total samples over the sample rate. ID3v2 tags before
// "fLaC" are skipped. A STREAMINFO that leaves the total unknown (0) is an error.
func FLACDuration(r io.ReaderAt, size int64) (time.Duration, error) {
	rd := newReader(r, size, FLAC)
	off, err := skipID3(rd)
	if err != nil {
		return 0, err
	}
	b, err := rd.full(off, 4+4+34, "STREAMINFO block")
	if err != nil {
		return 0, err
	}
	if string(b[:4]) != "fLaC" {
		return 0, fail(FLAC, "no fLaC marker")
	}
	if b[4]&0x7F != 0 {
		return 0, fail(FLAC, "the first metadata block is not STREAMINFO")
	}
	if n := int(b[5])<<16 | int(b[6])<<8 | int(b[7]); n < 34 {
		return 0, fail(FLAC, "STREAMINFO is %d bytes, not 34", n)
	}
	si := b[8:]
	rate := uint64(si[10])<<12 | uint64(si[11])<<4 | uint64(si[12])>>4
	total := uint64(si[13]&0x0F)<<32 | uint64(si[14])<<24 | uint64(si[15])<<16 | uint64(si[16])<<8 | uint64(si[17])
	switch {
	case rate == 0:
		return 0, fail(FLAC, "STREAMINFO's sample rate is 0")
	case total == 0:
		return 0, fail(FLAC, "STREAMINFO does not give the total number of samples")
	}
	d, ok := samplesDuration(total, rate)
	if !ok {
		return 0, fail(FLAC, "the duration is beyond %v", MaxDuration)
	}
	return d, nil
}
