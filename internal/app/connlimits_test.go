package app

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The descriptor budget: the admin listener, Redis and the process are paid for
// first; the data plane gets half of the rest at most (two descriptors per
// connection); a limit that leaves nothing is an error naming what to change.
func TestPlanConnections(t *testing.T) {
	tests := []struct {
		name                              string
		limit                             uint64
		process, redis, admin, configured int
		wantData                          int
		wantErr                           bool
	}{
		{"unknown limit: as configured", 0, 64, 20, 64, 4096, 4096, false},
		{"plenty: as configured", 1 << 20, 64, 20, 64, 4096, 4096, false},
		{"exactly enough", 64 + 20 + 64 + 2*4096, 64, 20, 64, 4096, 4096, false},
		{"one short: lowered", 64 + 20 + 64 + 2*4096 - 1, 64, 20, 64, 4096, 4095, false},
		{"a container's 1024", 1024, 64, 20, 64, 4096, 438, false},
		{"this machine's 20000", 20000, 64, 20, 64, 4096, 4096, false},
		{"20000 against a cap of 20000", 20000, 64, 20, 64, 20000, 9926, false},
		{"room for one", 64 + 20 + 64 + 2, 64, 20, 64, 4096, 1, false},
		{"nothing left", 64 + 20 + 64 + 1, 64, 20, 64, 4096, 0, true},
		{"admin takes it all", 256, 64, 20, 200, 4096, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := planConnections(tt.limit, tt.process, tt.redis, tt.admin, tt.configured)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
					t.Fatalf("got %+v, %v; want an error", b, err)
				}
				return
			}
			if err != nil || b.Data != tt.wantData || b.Configured != tt.configured || b.Admin != tt.admin {
				t.Fatalf("got %+v, %v; want data %d", b, err, tt.wantData)
			}
			if tt.limit > 0 && uint64(tt.process+tt.redis+tt.admin+2*b.Data) > tt.limit {
				t.Fatalf("the plan spends more than %d descriptors: %+v", tt.limit, b)
			}
		})
	}
}

// deadlineWriter is an http.ResponseWriter whose connection records the read
// deadlines http.ResponseController sets on it.
type deadlineWriter struct {
	http.ResponseWriter
	setReadDeadline func(time.Time) error
}

func (w deadlineWriter) SetReadDeadline(d time.Time) error { return w.setReadDeadline(d) }

// chunkBody is a request body that gives one chunk per Read, moving a fake
// clock to the chunk's time first, and fails a Read that comes after the
// deadline in force (as a connection would).
type chunkBody struct {
	clock    *time.Time
	chunks   []chunk
	deadline *time.Time
}

type chunk struct {
	at time.Duration // since the start
	n  int
}

var errTimeout = errors.New("read deadline passed")

func (b *chunkBody) Read(p []byte) (int, error) {
	if len(b.chunks) == 0 {
		return 0, io.EOF
	}
	c := b.chunks[0]
	b.chunks = b.chunks[1:]
	at := time.Unix(0, 0).Add(c.at)
	if !b.deadline.IsZero() && at.After(*b.deadline) {
		*b.clock = *b.deadline
		return 0, errTimeout
	}
	*b.clock = at
	return min(c.n, len(p)), nil
}

func (b *chunkBody) Close() error { return nil }

// The pace: a body at or above the rate is never cut however long it takes; a
// trickle is cut about idle after it began; pauses longer than idle are cut;
// a body read to its end clears the deadline; one the handler left unread gets
// unreadBodyGrace more, never more than it earned.
func TestBodyPace(t *testing.T) {
	const idle = 2 * time.Second
	steady := func(rate, every time.Duration, total time.Duration, n int) []chunk {
		var cs []chunk
		for at := every; at <= total; at += every {
			cs = append(cs, chunk{at, n})
		}
		return cs
	}
	tests := []struct {
		name     string
		minRate  int64
		chunks   []chunk
		readAll  bool          // the handler reads to the end (else: stops after the chunks)
		wantCut  time.Duration // when the body was cut (0: never)
		wantLast time.Time     // the deadline in force when the handler returns (zero: cleared)
	}{
		{"steady at twice the rate for 60 s: never cut, cleared at the end", 1000,
			steady(0, 100*time.Millisecond, 60*time.Second, 200), true, 0, time.Time{}},
		{"steady at the rate exactly for 30 s", 1000,
			steady(0, 100*time.Millisecond, 30*time.Second, 100), true, 0, time.Time{}},
		{"a trickle of 1 byte/s: cut about idle in", 1000,
			steady(0, time.Second, 60*time.Second, 1), true, idle + 4*time.Millisecond, time.Time{}},
		{"half the rate: cut after idle/(1-1/2)", 1000,
			steady(0, 100*time.Millisecond, 60*time.Second, 50), true, 2 * idle, time.Time{}},
		{"fast, then a pause longer than idle: cut", 1000,
			[]chunk{{10 * time.Millisecond, 100_000}, {10*time.Millisecond + idle + time.Second, 10}}, true, 10*time.Millisecond + idle, time.Time{}},
		{"no rate: a trickle within idle is never cut", 0,
			steady(0, time.Second, 30*time.Second, 1), true, 0, time.Time{}},
		{"no rate: a pause longer than idle is cut", 0,
			[]chunk{{time.Second, 1}, {time.Second + idle + time.Millisecond, 1}}, true, time.Second + idle, time.Time{}},
		{"left unread: one more second", 1000,
			[]chunk{{10 * time.Millisecond, 100_000}}, false, 0, time.Unix(0, 0).Add(10*time.Millisecond + unreadBodyGrace)},
		{"left unread, behind the rate: its earned deadline", 1000,
			steady(0, 100*time.Millisecond, 1500*time.Millisecond, 30), false, 0, time.Unix(0, 0).Add(idle + 450*time.Millisecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := time.Unix(0, 0)
			var deadline time.Time
			body := &chunkBody{clock: &clock, chunks: tt.chunks, deadline: &deadline}
			w := deadlineWriter{setReadDeadline: func(d time.Time) error { deadline = d; return nil }}
			var cut time.Duration
			pace := bodyPace{idle: idle, minRate: tt.minRate, now: func() time.Time { return clock }}
			h := pace.wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 1<<20)
				for left := len(tt.chunks); tt.readAll || left > 0; left-- {
					_, err := r.Body.Read(buf)
					if errors.Is(err, errTimeout) {
						cut = clock.Sub(time.Unix(0, 0))
						return
					}
					if err == io.EOF {
						return
					}
				}
			}))
			r, _ := http.NewRequest(http.MethodPost, "/", body)
			h.ServeHTTP(w, r)
			if tt.wantCut == 0 && cut != 0 {
				t.Fatalf("cut at %s", cut)
			}
			if tt.wantCut != 0 {
				// The deadline in force may trail the earned one by deadlineStep.
				if cut > tt.wantCut || cut < tt.wantCut-deadlineStep-50*time.Millisecond {
					t.Fatalf("cut at %s, want about %s", cut, tt.wantCut)
				}
				return
			}
			if !deadline.Equal(tt.wantLast) {
				t.Fatalf("deadline left %s, want %s", deadline.Sub(time.Unix(0, 0)), tt.wantLast.Sub(time.Unix(0, 0)))
			}
		})
	}
}

// A writer that cannot set deadlines (a test's recorder) leaves the body unpaced.
func TestBodyPaceWithoutDeadlines(t *testing.T) {
	pace := bodyPace{idle: time.Second, minRate: 1000, now: time.Now}
	var got []byte
	h := pace.wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got, _ = io.ReadAll(r.Body) }))
	w := deadlineWriter{setReadDeadline: func(time.Time) error { return http.ErrNotSupported }}
	r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader("the whole body"))
	h.ServeHTTP(w, r)
	if string(got) != "the whole body" {
		t.Fatalf("read %q", got)
	}
}

// The limiting listener: at the cap, Accept waits until a connection closes,
// and the waiting connection is then served; Close ends a waiting Accept.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newLimitListener(inner, "test", 2, zap.NewNop())
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	select {
	case c := <-accepted:
		t.Fatalf("a third connection accepted beyond the cap of 2: %v", c.RemoteAddr())
	case <-time.After(200 * time.Millisecond):
	}
	if ln.Open() != 2 {
		t.Fatalf("%d open, want 2", ln.Open())
	}
	first.Close()
	first.Close() // a second Close gives back nothing more
	select {
	case third := <-accepted:
		defer third.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting connection was not accepted after one closed")
	}
	if ln.Open() != 2 {
		t.Fatalf("%d open after the swap, want 2", ln.Open())
	}
	second.Close()
	if ln.Open() != 1 {
		t.Fatalf("%d open, want 1", ln.Open())
	}
	// At the cap again, with Accept waiting: Close ends it.
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fourth := <-accepted
	defer fourth.Close()
	ln.Close()
	select {
	case _, ok := <-accepted:
		if ok {
			t.Fatal("accepted after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Accept")
	}
	_ = clients
}
