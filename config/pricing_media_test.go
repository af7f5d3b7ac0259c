package config

import (
	"strings"
	"testing"

	"github.com/creditgate/creditgate/money"
)

// TestMediaPriceKeys: pricing.models.<m> takes the media endpoints' units —
// images per image by quality and size, characters, image_input — and checks
// them.
func TestMediaPriceKeys(t *testing.T) {
	cfg := mustLoad(t, `
pricing:
  models:
    my-dalle:
      images:
        default_size: 1024x1024
        default_quality: standard
        per_image: { standard: { 1024x1024: "0.040", 1792x1024: "0.080" }, hd: { 1024x1024: "0.080" } }
    my-tts: { characters: "15.00" }
    my-image: { input: "5", image_input: "10", output: "40" }
`, tokenEnv)
	p := cfg.Pricing()
	_, dalle, ok := p.Resolve("my-dalle")
	if !ok || dalle.Images == nil || dalle.Images.PerImage["hd"]["1024x1024"] != money.MustParse("0.080") || dalle.Images.DefaultQuality != "standard" {
		t.Fatalf("my-dalle = %+v %v", dalle, ok)
	}
	if unit, ok := dalle.Images.Unit("", "auto"); !ok || unit != money.MustParse("0.080") {
		t.Fatalf("auto quality at the default size = %s, want the dearest, 0.080", unit)
	}
	if _, tts, _ := p.Resolve("my-tts"); tts.Characters != 15*money.Dollar {
		t.Fatalf("my-tts = %+v", tts)
	}
	if _, img, _ := p.Resolve("my-image"); img.ImageInput != 10*money.Dollar || img.Output != 40*money.Dollar {
		t.Fatalf("my-image = %+v", img)
	}
	for _, w := range cfg.Warnings() {
		if strings.HasPrefix(w, "pricing.models.my-") {
			t.Errorf("warning for a media model: %s", w)
		}
	}

	for _, tc := range []struct{ yaml, want string }{
		{"pricing: { models: { m: { images: { per_image: {} } } } }", "pricing.models.m.images.per_image"},
		{"pricing: { models: { m: { images: { per_image: { hd: {} } } } } }", "pricing.models.m.images.per_image.hd"},
		{`pricing: { models: { m: { images: { per_image: { hd: { 1024x1024: "-1" } } } } } }`, "pricing.models.m.images.per_image.hd.1024x1024"},
		{`pricing: { models: { m: { images: { default_quality: low, per_image: { hd: { 1024x1024: "1" } } } } } }`, "pricing.models.m.images.default_quality"},
		{`pricing: { models: { m: { characters: "-3" } } }`, "pricing.models.m.characters"},
		{`pricing: { models: { m: { output: "1" } } }`, "pricing.models.m.input"},
	} {
		_, err := LoadBytes([]byte(tc.yaml), tokenEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a problem at %s", tc.yaml, err, tc.want)
		}
	}
}
