package app

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// limitListener is a net.Listener that keeps at most max connections open at
// once. At the cap, Accept waits for one to close before it accepts the next:
// new connections wait in the kernel's accept backlog (and, once that is full,
// the kernel stops completing handshakes), so a flood costs the process no file
// descriptor beyond the cap and a waiting client is served, in arrival order,
// as soon as a slot frees — rather than being accepted only to be closed.
// Connections that never send a request free their slot after
// limits.header_timeout, idle keep-alive ones after limits.idle_timeout.
type limitListener struct {
	net.Listener
	// name says which listener this is in the log ("listen", "admin.listen").
	name string
	max  int
	log  *zap.Logger

	slots chan struct{} // one token per open connection, and one for an Accept under way
	open  atomic.Int64
	done  chan struct{} // closed by Close: a waiting Accept returns
	once  sync.Once

	// lastFull is when the cap was last logged (unix nanoseconds): at most once
	// per fullLogInterval, however long a flood lasts.
	lastFull atomic.Int64
}

// fullLogInterval spaces the warnings of a listener held at its cap.
const fullLogInterval = time.Minute

func newLimitListener(ln net.Listener, name string, max int, log *zap.Logger) *limitListener {
	return &limitListener{Listener: ln, name: name, max: max, log: log,
		slots: make(chan struct{}, max), done: make(chan struct{})}
}

// Accept waits for a free slot, then accepts a connection that gives its slot
// back when closed.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.noteFull()
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitedConn{Conn: c, release: func() { l.open.Add(-1); <-l.slots }}, nil
}

// Close stops accepting; a waiting Accept returns net.ErrClosed.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Open is the number of connections open now.
func (l *limitListener) Open() int { return int(l.open.Load()) }

func (l *limitListener) noteFull() {
	now := time.Now().UnixNano()
	last := l.lastFull.Load()
	if now-last < int64(fullLogInterval) || !l.lastFull.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("listener at its connection cap: new connections wait for one to close",
		zap.String("listener", l.name), zap.Int("max_connections", l.max))
}

// limitedConn gives its listener slot back on its first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection: http.Server does so before it closes
// a connection whose request body it did not read (a 413), so the client reads
// the answer instead of a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
