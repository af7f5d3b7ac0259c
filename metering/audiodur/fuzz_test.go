package audiodur

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// fuzzParser checks one parser on arbitrary bytes: no panic, a duration in
// [0, MaxDuration] or an error, and never more than MaxReadBytes read — a
// declared size far beyond the bytes at hand included (the parser must not
// read toward it). bound is MaxReadBytes but for WebM's walk.
func fuzzParser(f *testing.F, parse func(io.ReaderAt, int64) (time.Duration, error), bound int64, seeds ...[]byte) {
	for _, s := range seeds {
		f.Add(s, int64(0))
		f.Add(s, int64(1<<40))
	}
	f.Fuzz(func(t *testing.T, file []byte, extra int64) {
		if extra < 0 || extra > 1<<40 {
			extra = 0
		}
		cr := &countingReaderAt{r: bytes.NewReader(file)}
		d, err := parse(cr, int64(len(file))+extra)
		if err == nil && (d < 0 || d > MaxDuration) {
			t.Fatalf("duration %v out of [0, %v]", d, MaxDuration)
		}
		if cr.read > bound {
			t.Fatalf("read %d bytes, beyond %d", cr.read, bound)
		}
	})
}

func FuzzWAVDuration(f *testing.F) {
	fuzzParser(f, WAVDuration, MaxReadBytes, makeWAV(8000, 1, 100), makeWAV(44100, 2, 10)[:50])
}

func FuzzMP3Duration(f *testing.F) {
	fuzzParser(f, MP3Duration, MaxReadBytes, makeMP3CBR(3), makeMP3Xing(10, "Xing"), makeMP3VBRI(5), id3v2(10))
}

func FuzzMP4Duration(f *testing.F) {
	fuzzParser(f, MP4Duration, MaxReadBytes, makeM4A(true, 1000, 5000), makeM4A(false, 48000, 0, 48000))
}

func FuzzOggDuration(f *testing.F) {
	fuzzParser(f, OggDuration, MaxReadBytes, makeOpus(48000), makeVorbis(22050, 22050))
}

func FuzzWebMDuration(f *testing.F) {
	fuzzParser(f, WebMDuration, MaxWebMWalkBytes, makeWebM(1000, 1_000_000), makeWebM(5, 1000),
		makeLiveWebM(unknownCluster(0, simpleBlock(0, 5)), unknownCluster(100, ebml(idBlockGroup, ebml(idBlock, []byte{0x81, 0, 1, 0}), ebml(idBlockDuration, []byte{9})))))
}

func FuzzFLACDuration(f *testing.F) {
	fuzzParser(f, FLACDuration, MaxReadBytes, makeFLAC(44100, 44100), append(id3v2(5), makeFLAC(8000, 1)...))
}

// FuzzDuration: the sniffing entry point, over every format's seeds.
func FuzzDuration(f *testing.F) {
	for _, s := range [][]byte{makeWAV(8000, 1, 100), makeMP3CBR(2), makeM4A(true, 1000, 5000), makeOpus(4800), makeWebM(1, 1_000_000), makeFLAC(8000, 8)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		cr := &countingReaderAt{r: bytes.NewReader(file)}
		d, format, err := Duration(cr, int64(len(file)))
		if err == nil && (d < 0 || d > MaxDuration || format == "") {
			t.Fatalf("Duration = %v, %q", d, format)
		}
		if cr.read > MaxWebMWalkBytes+64 { // Sniff's few header bytes besides the parser's budget
			t.Fatalf("read %d bytes", cr.read)
		}
	})
}
