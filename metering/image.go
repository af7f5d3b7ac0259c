package metering

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"

	"github.com/creditgate/creditgate/metering/internal/jsonscan"
)

// Image input tokens, by OpenAI's rule for its vision models: detail "low" costs 85
// tokens; "high" and "auto" cost 85 + 170 per 512-px tile after the image is scaled to
// fit in 2048×2048 and then so that its shorter side is at most 768 px. The size is
// read from a data: URL's PNG, JPEG, GIF or WebP header (decoding only the bytes of
// the header, never the whole image); when it is unknown (a remote URL, a file id, an
// unreadable header) the image is priced as a 1024×1024 high-detail image, 765 tokens.
const (
	imageBaseTokens    = 85
	imageTileTokens    = 170
	imageDefaultTokens = imageBaseTokens + 4*imageTileTokens // 1024×1024: 4 tiles
)

// imageTokensAt prices an image part: image is the image_url member (a URL string or
// an object with "url" and "detail"), detail the part's own "detail" member, if any.
func imageTokensAt(b []byte, image, detail jsonscan.Member) int64 {
	url := jsonscan.Member{Start: -1}
	if b[image.Start] == '{' {
		it := jsonscan.Members(b, image.Start)
		for m, ok := it.Next(); ok; m, ok = it.Next() {
			switch {
			case m.Is("url"):
				url = m
			case m.Is("detail"):
				detail = m
			}
		}
	} else {
		url = image
	}
	if detail.End > detail.Start {
		if d, _ := jsonscan.StringAt(b, detail.Start, detail.End); d == "low" {
			return imageBaseTokens
		}
	}
	if url.Start < 0 {
		return imageDefaultTokens
	}
	raw, escaped, ok := jsonscan.RawStringAt(b, url.Start, url.End)
	if !ok {
		return imageDefaultTokens
	}
	if escaped { // rare: e.g. "\/" from an encoder that escapes slashes
		raw = []byte(jsonscan.Unquote(raw))
	}
	w, h, ok := dataURLImageSize(raw)
	if !ok {
		return imageDefaultTokens
	}
	return imageTokens(w, h)
}

// imageTokens is the high-detail cost of a w×h image.
func imageTokens(w, h int64) int64 {
	if w <= 0 || h <= 0 {
		return imageDefaultTokens
	}
	if m := max(w, h); m > 2048 {
		w, h = max(w*2048/m, 1), max(h*2048/m, 1)
	}
	if s := min(w, h); s > 768 {
		w, h = max(w*768/s, 1), max(h*768/s, 1)
	}
	tiles := ((w + 511) / 512) * ((h + 511) / 512)
	return imageBaseTokens + imageTileTokens*tiles
}

// dataURLImageSize reads the pixel size from a base64 data: URL's image header.
func dataURLImageSize(url []byte) (w, h int64, ok bool) {
	if !bytes.HasPrefix(url, []byte("data:")) {
		return 0, 0, false
	}
	comma := bytes.IndexByte(url[:min(len(url), 256)], ',')
	if comma < 0 || !bytes.HasSuffix(url[:comma], []byte(";base64")) {
		return 0, 0, false
	}
	return imageSize(b64Bytes(url[comma+1:]))
}

// b64Bytes reads a base64 payload at byte offsets without decoding the rest of it:
// bytes [off, off+n) come from the 4-character groups that hold them.
type b64Bytes []byte

func (s b64Bytes) at(off, n int) ([]byte, bool) {
	if off < 0 || n <= 0 || off > len(s) { // off bytes need more than off characters
		return nil, false
	}
	first, last := off/3, (off+n+2)/3 // groups [first, last)
	lo, hi := first*4, min(last*4, len(s))
	if lo >= hi {
		return nil, false
	}
	chunk := s[lo:hi]
	var buf [64]byte
	var dst []byte
	if base64.StdEncoding.DecodedLen(len(chunk)) <= len(buf) {
		dst = buf[:]
	} else {
		dst = make([]byte, base64.StdEncoding.DecodedLen(len(chunk)))
	}
	enc := base64.StdEncoding
	if len(chunk)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	m, err := enc.Decode(dst, chunk)
	if err != nil {
		return nil, false
	}
	skip := off - first*3
	if skip+n > m {
		return nil, false
	}
	out := make([]byte, n)
	copy(out, dst[skip:skip+n])
	return out, true
}

// imageSize reads the width and height from a PNG, GIF, WebP or JPEG header.
func imageSize(s b64Bytes) (w, h int64, ok bool) {
	head, ok := s.at(0, 30)
	if !ok {
		if head, ok = s.at(0, 12); !ok {
			return 0, 0, false
		}
	}
	switch {
	case len(head) >= 24 && bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")) && string(head[12:16]) == "IHDR":
		return int64(binary.BigEndian.Uint32(head[16:])), int64(binary.BigEndian.Uint32(head[20:])), true
	case len(head) >= 10 && (bytes.HasPrefix(head, []byte("GIF87a")) || bytes.HasPrefix(head, []byte("GIF89a"))):
		return int64(binary.LittleEndian.Uint16(head[6:])), int64(binary.LittleEndian.Uint16(head[8:])), true
	case len(head) >= 30 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		switch string(head[12:16]) {
		case "VP8 ": // lossy: 14-bit sizes after the frame tag and start code
			return int64(binary.LittleEndian.Uint16(head[26:]) & 0x3fff), int64(binary.LittleEndian.Uint16(head[28:]) & 0x3fff), true
		case "VP8L": // lossless: 14-bit (size-1) fields packed after the 0x2f signature
			bits := binary.LittleEndian.Uint32(head[21:])
			return int64(bits&0x3fff) + 1, int64(bits>>14&0x3fff) + 1, true
		case "VP8X": // extended: 24-bit (size-1) fields
			w := int64(head[24]) | int64(head[25])<<8 | int64(head[26])<<16
			h := int64(head[27]) | int64(head[28])<<8 | int64(head[29])<<16
			return w + 1, h + 1, true
		}
	case len(head) >= 2 && head[0] == 0xFF && head[1] == 0xD8:
		return jpegSize(s)
	}
	return 0, 0, false
}

// jpegSize walks JPEG segments (their lengths, not their contents) to the first
// start-of-frame marker, which holds the size.
func jpegSize(s b64Bytes) (w, h int64, ok bool) {
	const maxSegments, maxOffset = 256, 16 << 20
	off := 2
	for range maxSegments {
		if off > maxOffset {
			break
		}
		seg, ok := s.at(off, 9)
		if !ok {
			if seg, ok = s.at(off, 4); !ok {
				break
			}
		}
		if seg[0] != 0xFF {
			break
		}
		marker := seg[1]
		switch {
		case marker == 0xFF: // fill byte
			off++
			continue
		case marker == 0x01 || marker >= 0xD0 && marker <= 0xD9: // no payload
			off += 2
			continue
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			if len(seg) < 9 {
				return 0, 0, false
			}
			return int64(binary.BigEndian.Uint16(seg[7:])), int64(binary.BigEndian.Uint16(seg[5:])), true
		}
		length := int(binary.BigEndian.Uint16(seg[2:]))
		if length < 2 {
			break
		}
		off += 2 + length
	}
	return 0, 0, false
}
