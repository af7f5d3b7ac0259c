//go:build linux

package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProxyInProcessCPU is BenchmarkProxyInProcess with the process's CPU
// time per request (cpu-ns/op: user + system, GC included, which ns/op on a
// shared machine is not), for a repeated body (the count cache hits, as it does
// for a chat's resent history) and for fresh prompts (a nonce in every message,
// so a prompt counted is a prompt tokenized, as `make bench` sends them).
//
//	go test ./proxy -run '^$' -bench ProxyInProcessCPU -benchmem
func BenchmarkProxyInProcessCPU(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := "repeated"
		if fresh {
			name = "fresh"
		}
		b.Run(name, func(b *testing.B) {
			p, secret := newAllocProxy(b)
			body := bytes.ReplaceAll(benchBody(1000, false), []byte(`"content":" The`), []byte(`"content":"[ref 000000] The`))
			var nonces []int // offsets of the nonces' digits
			for i := 0; ; {
				j := bytes.Index(body[i:], []byte("[ref "))
				if j < 0 {
					break
				}
				nonces = append(nonces, i+j+5)
				i += j + 5
			}
			if len(nonces) == 0 {
				b.Fatal("no nonce in the body")
			}
			b.ReportAllocs()
			start := cpuTime(b)
			n := 0
			for b.Loop() {
				if fresh {
					n++
					for m, off := range nonces {
						v := n*len(nonces) + m // each message its own
						for k := 5; k >= 0; k-- {
							body[off+k] = byte('0' + v%10)
							v /= 10
						}
					}
				}
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+secret)
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				p.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
