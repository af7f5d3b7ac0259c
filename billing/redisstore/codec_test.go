package redisstore

import (
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/creditgate/creditgate/money"
)

// The prelude's number codecs run in Redis's Lua and must agree with Go's: usd
// (the dollars in event notes) with money.Micros.String, and fmt (every number a
// script writes) with strconv.FormatInt and parseInt, which decodes replies.
var codecScript = makeScript("codec_test.lua", preludeMarker+`
local out = {}
for i = 1, #ARGV do
  local x = tonumber(ARGV[i])
  out[#out + 1] = usd(x)
  out[#out + 1] = fmt(x)
end
return out
`)

const maxLua = 1<<53 - 1 // the largest integer every smaller one of which a double holds

var codecEdges = []int64{
	0, 1, 9, 10, 99, 100, 999999, 1000000, 1000001, 1999999, 12500000, 123456789,
	-1, -999999, -1000000, -1000001, -12500000,
	int64(money.MaxAmount) - 1, int64(money.MaxAmount), int64(money.MaxAmount) + 1, -int64(money.MaxAmount),
	2 * int64(money.MaxAmount), 9007199253999999, maxLua, -maxLua,
}

// checkCodecs runs the codecs on xs in Redis and compares each with Go's (t: a
// *testing.T or a *rapid.T).
func checkCodecs(t interface {
	Fatal(...any)
	Fatalf(string, ...any)
}, e *env, xs []int64) {
	args := make([]any, len(xs))
	for i, x := range xs {
		args[i] = x
	}
	r, err := e.run(e.ctx, codecScript, e.accountKeys("codec"), args...)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range xs {
		usdLua, fmtLua := r.str(2*i), r.str(2*i+1)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if want := money.Micros(x).String(); usdLua != want {
			t.Fatalf("usd(%d) = %q in Lua, money.Micros.String() = %q", x, usdLua, want)
		}
		if want := strconv.FormatInt(x, 10); fmtLua != want {
			t.Fatalf("fmt(%d) = %q in Lua, strconv = %q", x, fmtLua, want)
		}
		if n, ok := parseInt(fmtLua); !ok || n != x {
			t.Fatalf("parseInt(%q) = %d, %v; want %d", fmtLua, n, ok, x)
		}
	}
}

func TestLuaNumberCodecsAgreeWithGo(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		checkCodecs(t, e, codecEdges)
		rapid.Check(t, func(t *rapid.T) {
			checkCodecs(t, e, rapid.SliceOfN(rapid.Int64Range(-maxLua, maxLua), 1, 64).Draw(t, "micros"))
		})
	})
}
