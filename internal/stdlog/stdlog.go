// Package stdlog routes the standard library's log lines through zap: those of
// net/http's servers (http.Server.ErrorLog), of httputil.ReverseProxy (its
// ErrorLog) and of http.Transport, which writes to the log package's default
// logger. Each becomes one JSON line at a level chosen by what it says (a panic
// or a failing accept is an error, a client's broken TLS handshake is debug,
// the rest warn), and any Go-quoted text in it — the bytes an upstream or a
// client sent, which the standard library quotes with %q — is replaced by its
// length, so no peer's bytes (a prompt, a completion) reach the logs.
package stdlog

import (
	"log"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a *log.Logger, for http.Server.ErrorLog and
// httputil.ReverseProxy.ErrorLog, that writes each line through l.
func New(l *zap.Logger) *log.Logger {
	return log.New(writer{logger: func() *zap.Logger { return l }}, "", 0)
}

// RouteDefault sends the log package's default logger (log.Printf: what
// http.Transport and the HTTP/2 code use) through l. It is process-wide: the
// newest call wins, which is the newest App's logger.
func RouteDefault(l *zap.Logger) {
	defaultLogger.Store(l)
	routeOnce.Do(func() {
		log.SetFlags(0)
		log.SetPrefix("")
		log.SetOutput(writer{logger: defaultLogger.Load})
	})
}

var (
	defaultLogger atomic.Pointer[zap.Logger]
	routeOnce     sync.Once
)

// writer is the io.Writer under a *log.Logger: the log package calls Write once
// per line.
type writer struct{ logger func() *zap.Logger }

func (w writer) Write(p []byte) (int, error) {
	l := w.logger()
	if l == nil {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\n")
	msg, detail, _ := strings.Cut(line, "\n") // a panic's stack follows its first line
	if ce := l.Check(Level(msg), Redact(msg)); ce != nil {
		fields := []zap.Field{zap.String("source", "go")}
		if detail != "" {
			fields = append(fields, zap.String("detail", Redact(detail)))
		}
		ce.Write(fields...)
	}
	return len(p), nil
}

// levels maps the standard library's messages, by prefix, to a level; the
// others are warnings.
var levels = []struct {
	prefix string
	level  zapcore.Level
}{
	{"http: panic serving", zapcore.ErrorLevel},                    // a handler bug
	{"http: Accept error", zapcore.ErrorLevel},                     // the listener cannot accept (e.g. out of descriptors)
	{"http: superfluous response.WriteHeader", zapcore.ErrorLevel}, // a handler bug
	{"http: response.Write on hijacked", zapcore.ErrorLevel},
	{"http: TLS handshake error", zapcore.DebugLevel}, // a client's problem: scanners, probes, wrong protocol
	{"http2: server: error reading preface", zapcore.DebugLevel},
	{"httputil: ReverseProxy read error during body copy", zapcore.InfoLevel}, // the request's own line says what happened
}

// Level is the level a standard-library log message is logged at.
func Level(msg string) zapcore.Level {
	for _, l := range levels {
		if strings.HasPrefix(msg, l.prefix) {
			return l.level
		}
	}
	return zapcore.WarnLevel
}

// Redact returns s with every Go-quoted string in it ("…" as %q writes it)
// replaced by "<n bytes withheld>", n being the length of the unquoted text;
// an opening quote that never closes withholds the rest of s.
func Redact(s string) string {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i:]
		quoted, err := strconv.QuotedPrefix(s)
		if err != nil {
			writeWithheld(&b, len(s)-1)
			return b.String()
		}
		text, err := strconv.Unquote(quoted)
		n := len(text)
		if err != nil {
			n = len(quoted) - 2
		}
		writeWithheld(&b, n)
		s = s[len(quoted):]
		i = strings.IndexByte(s, '"')
	}
	b.WriteString(s)
	return b.String()
}

func writeWithheld(b *strings.Builder, n int) {
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(n))
	b.WriteString(" bytes withheld>")
}
