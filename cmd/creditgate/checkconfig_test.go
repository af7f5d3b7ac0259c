package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creditgate/creditgate/config"
	"github.com/creditgate/creditgate/money"
)

// check-config prints the resolved price table: built-in rows and the file's,
// each with its source, aliases with their target, then the OK line.
func TestCheckConfigPrintsThePriceTable(t *testing.T) {
	t.Setenv("CREDITGATE_ADMIN_TOKENS", "check-config-admin-token-0123456789")
	t.Setenv("CREDITGATE_UPSTREAM_API_KEY", "sk-upstream-test")
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(`
pricing:
  models:
    gpt-4o: { input: "2.00", output: "8.00", max_output_tokens: 16384, encoding: o200k_base }
  aliases: { my-chat: gpt-4o-mini }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"check-config", "--config", path})
	if err := root.Execute(); err != nil {
		t.Fatalf("check-config: %v\n%s", err, out.String())
	}
	// Warnings depend on the machine (a container warns about the default spool).
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.HasPrefix(l, "warning: ") {
			lines = append(lines, l)
		}
	}
	row := func(name string) []string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				return f
			}
		}
		t.Fatalf("no row %s in:\n%s", name, out.String())
		return nil
	}
	tests := []struct {
		name string
		want string
	}{
		{"MODEL", "MODEL INPUT CACHED OUTPUT MAX OUTPUT ENCODING SOURCE"},
		{"gpt-4o", "gpt-4o 2.00 2.00 8.00 16384 o200k_base config"},
		{"gpt-4o-mini", "gpt-4o-mini 0.15 0.075 0.60 16384 o200k_base built-in"},
		{"my-chat", "my-chat 0.15 0.075 0.60 16384 o200k_base config, alias of gpt-4o-mini"},
		{"o3", "o3 2.00 0.50 8.00 100000 o200k_base built-in"},
		{"text-embedding-3-small", "text-embedding-3-small 0.02 0.02 0.00 - cl100k_base built-in"},
		{"tts-1", "tts-1 0.00 0.00 0.00 - by name built-in; 15.00 per 1M characters"},
		{"dall-e-2", "dall-e-2 0.00 0.00 0.00 - by name built-in; per image: standard 1024x1024 0.02, standard 256x256 0.016, standard 512x512 0.018"},
	}
	for _, tt := range tests {
		if got := strings.Join(row(tt.name), " "); got != tt.want {
			t.Errorf("row %s = %q, want %q", tt.name, got, tt.want)
		}
	}
	// One row per priced name (the built-in table plus my-chat), the header and the OK line.
	if got, want := len(lines), len(config.DefaultPricingModels())+1+2; got != want {
		t.Errorf("%d lines, want %d:\n%s", got, want, out.String())
	}
	ok := regexp.MustCompile(`^.*config\.yaml: OK \((\d+) priced models, 1 alias, 5 tiers; built-in prices checked ` + config.BuiltinPricesChecked + `\)$`)
	if !ok.MatchString(lines[len(lines)-1]) {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
}

func TestUnitPrice(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2.5", "2.50"}, {"10", "10.00"}, {"0.075", "0.075"}, {"0.000001", "0.000001"}, {"0", "0.00"}, {"1.125", "1.125"},
	} {
		if got := unitPrice(money.MustParse(tt.in)); got != tt.want {
			t.Errorf("unitPrice(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
