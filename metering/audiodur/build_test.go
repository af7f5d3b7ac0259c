package audiodur

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"

	"github.com/creditgate/creditgate/metering/audiodur/audiotest"
)

// Builders of minimal valid files, written by hand: the headers each parser
// reads, and audio bytes (silence, or a pattern) standing for the rest.

var (
	makeWAV    = audiotest.WAV
	mp3Frame   = audiotest.MP3Frame
	id3v2      = audiotest.ID3v2
	makeMP3CBR = audiotest.MP3CBR
)

// makeMP3Xing is a Xing-headed VBR file that claims total frames but holds
// only a few (the count, not the size, says the duration).
func makeMP3Xing(total uint32, tag string) []byte {
	b := mp3Frame(func(f []byte) {
		copy(f[36:], tag)
		binary.BigEndian.PutUint32(f[40:], 1) // flags: frames present
		binary.BigEndian.PutUint32(f[44:], total)
	})
	for range 3 {
		b = append(b, mp3Frame(nil)...)
	}
	return b
}

// makeMP3VBRI is a VBRI-headed file counting total frames.
func makeMP3VBRI(total uint32) []byte {
	b := mp3Frame(func(f []byte) {
		copy(f[36:], "VBRI")
		binary.BigEndian.PutUint16(f[40:], 1)
		binary.BigEndian.PutUint32(f[50:], total)
	})
	return append(b, mp3Frame(nil)...)
}

func mp4Box(typ string, content ...[]byte) []byte {
	n := 8
	for _, c := range content {
		n += len(c)
	}
	b := make([]byte, 8, n)
	binary.BigEndian.PutUint32(b, uint32(n))
	copy(b[4:], typ)
	for _, c := range content {
		b = append(b, c...)
	}
	return b
}

// fullBoxV0 is an mvhd/mdhd version 0 content: times, timescale, duration.
func fullBoxV0(scale, dur uint32) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint32(b[12:], scale)
	binary.BigEndian.PutUint32(b[16:], dur)
	return b
}

func fullBoxV1(scale uint32, dur uint64) []byte {
	b := make([]byte, 32)
	b[0] = 1
	binary.BigEndian.PutUint32(b[20:], scale)
	binary.BigEndian.PutUint64(b[24:], dur)
	return b
}

// makeM4A is ftyp, then (moovFirst) moov and mdat, or mdat then moov — the
// layout of a file not fast-started. mvhd gives the duration, or, when
// mvhdDur is 0, the tracks' mdhd do.
func makeM4A(moovFirst bool, scale, mvhdDur uint32, trackDurs ...uint32) []byte {
	ftyp := mp4Box("ftyp", []byte("M4A \x00\x00\x00\x00M4A isom"))
	parts := [][]byte{mp4Box("mvhd", fullBoxV0(scale, mvhdDur))}
	for _, d := range trackDurs {
		parts = append(parts, mp4Box("trak", mp4Box("tkhd", make([]byte, 84)),
			mp4Box("mdia", mp4Box("mdhd", fullBoxV0(scale, d)), mp4Box("hdlr", make([]byte, 24)))))
	}
	moov := mp4Box("moov", parts...)
	mdat := mp4Box("mdat", bytes.Repeat([]byte{0x21, 0x10}, 5000))
	if moovFirst {
		return bytes.Join([][]byte{ftyp, moov, mdat}, nil)
	}
	return bytes.Join([][]byte{ftyp, mdat, moov}, nil)
}

// oggPageBytes is one Ogg page of one stream holding the given packets
// (each under 255 bytes), its CRC set.
func oggPageBytes(serial, seq uint32, granule int64, headerType byte, packets ...[]byte) []byte {
	h := make([]byte, 27)
	copy(h, "OggS")
	h[5] = headerType
	binary.LittleEndian.PutUint64(h[6:], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	var body []byte
	for _, p := range packets {
		h = append(h, byte(len(p)))
		body = append(body, p...)
	}
	h[26] = byte(len(packets))
	page := append(h, body...)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(page))
	return page
}

// makeOpus is an Ogg Opus file: OpusHead (pre-skip 312), OpusTags, audio
// pages up to the last granule position.
func makeOpus(lastGranule int64) []byte {
	head := []byte("OpusHead\x01\x01")
	head = binary.LittleEndian.AppendUint16(head, 312)
	head = binary.LittleEndian.AppendUint32(head, 48000)
	head = append(head, 0, 0, 0)
	b := oggPageBytes(7, 0, 0, 2, head)
	b = append(b, oggPageBytes(7, 1, 0, 0, []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"))...)
	b = append(b, oggPageBytes(7, 2, lastGranule/2, 0, bytes.Repeat([]byte{0xFC}, 200))...)
	// A page of another stream after the last one of ours: skipped.
	b = append(b, oggPageBytes(7, 3, lastGranule, 4, bytes.Repeat([]byte{0xFC}, 100))...)
	return append(b, oggPageBytes(9, 0, 1<<40, 4, []byte("other"))...)
}

// makeVorbis is an Ogg Vorbis file at rate Hz ending at lastGranule.
func makeVorbis(rate uint32, lastGranule int64) []byte {
	id := []byte("\x01vorbis\x00\x00\x00\x00\x02")
	id = binary.LittleEndian.AppendUint32(id, rate)
	id = append(id, make([]byte, 13)...)
	b := oggPageBytes(3, 0, 0, 2, id)
	return append(b, oggPageBytes(3, 1, lastGranule, 4, bytes.Repeat([]byte{1}, 50))...)
}

// ebml is an element with a 1-byte (or, for long content, 8-byte) size.
func ebml(id uint32, content ...[]byte) []byte {
	var c []byte
	for _, p := range content {
		c = append(c, p...)
	}
	var b []byte
	for s := 24; s >= 0; s -= 8 {
		if v := byte(id >> s); v != 0 || len(b) > 0 {
			b = append(b, v)
		}
	}
	if len(c) < 127 {
		b = append(b, 0x80|byte(len(c)))
	} else {
		size := binary.BigEndian.AppendUint64(nil, uint64(len(c)))
		b = append(append(b, 0x01), size[1:]...) // an 8-byte size: the marker, then 7 bytes
	}
	return append(b, c...)
}

// makeWebM is an EBML header, then a Segment of unknown size with a SeekHead,
// Info (TimecodeScale, Duration as a float64, in ms at the default scale) and
// one cluster of junk.
func makeWebM(durationMS float64, scale uint32) []byte {
	header := ebml(idEBML, ebml(0x4282, []byte("webm")))
	d := binary.BigEndian.AppendUint64(nil, math.Float64bits(durationMS))
	info := ebml(idInfo, ebml(idTimecodeScale, binary.BigEndian.AppendUint32(nil, scale)), ebml(idDuration, d), ebml(0x4D80, []byte("test")))
	seg := []byte{0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF} // unknown size
	seg = append(seg, ebml(0x114D9B74, make([]byte, 20))...)
	seg = append(seg, info...)
	seg = append(seg, ebml(idCluster, make([]byte, 300))...)
	return append(header, seg...)
}

// makeFLAC is a FLAC stream with STREAMINFO for total samples at rate.
func makeFLAC(rate uint32, total uint64) []byte {
	b := []byte("fLaC")
	b = append(b, 0x80, 0, 0, 34) // last block, STREAMINFO, 34 bytes
	si := make([]byte, 34)
	binary.BigEndian.PutUint16(si[0:], 4096)
	binary.BigEndian.PutUint16(si[2:], 4096)
	si[10] = byte(rate >> 12)
	si[11] = byte(rate >> 4)
	si[12] = byte(rate<<4) | 1<<1 // 2 channels
	si[13] = 15<<4 | byte(total>>32&0x0F)
	binary.BigEndian.PutUint32(si[14:], uint32(total))
	b = append(b, si...)
	return append(b, 0xFF, 0xF8, 0x69, 0x08, 0, 0, 0, 0)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// simpleBlock is a SimpleBlock of track 1 at rel ms into its Cluster.
func simpleBlock(rel int16, payload int) []byte {
	c := []byte{0x81, byte(uint16(rel) >> 8), byte(rel), 0x80}
	return ebml(idSimpleBlock, append(c, make([]byte, payload)...))
}

// unknownCluster is a Cluster of unknown size (as MediaRecorder writes them)
// at timecode ms, holding elements.
func unknownCluster(timecode uint16, elements ...[]byte) []byte {
	b := []byte{0x1F, 0x43, 0xB6, 0x75, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	b = append(b, ebml(idTimecode, []byte{byte(timecode >> 8), byte(timecode)})...)
	for _, e := range elements {
		b = append(b, e...)
	}
	return b
}

// makeLiveWebM is a browser recording: Segment and Clusters of unknown size,
// Info without a Duration, then clusters.
func makeLiveWebM(clusters ...[]byte) []byte {
	b := ebml(idEBML, ebml(0x4282, []byte("webm")))
	b = append(b, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	b = append(b, ebml(idInfo, ebml(idTimecodeScale, []byte{0x0F, 0x42, 0x40}), ebml(0x4D80, []byte("Chrome")))...)
	b = append(b, ebml(0x1654AE6B, make([]byte, 40))...) // Tracks
	for _, c := range clusters {
		b = append(b, c...)
	}
	return b
}
