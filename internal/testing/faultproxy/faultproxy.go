// Package faultproxy is a small TCP proxy for tests that puts network faults
// between a client and a server: it can swallow the server's replies after the
// server acted on a request (the lost reply that makes go-redis resend a
// command), cut every connection, stop answering at all, or refuse connections.
// It listens on a loopback port and forwards to one target address.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Fault is what the proxy does to traffic.
type Fault int

const (
	// Pass forwards everything both ways.
	Pass Fault = iota
	// DropReplyAndClose forwards a request, lets the server act on it, swallows
	// its reply and closes the client's connection: the client reads EOF.
	DropReplyAndClose
	// DropReplyAndHang forwards a request, lets the server act on it, swallows its
	// reply and every later byte of that connection: the client times out.
	DropReplyAndHang
	// Blackhole accepts connections and never answers: nothing reaches the
	// server, nothing comes back. A client times out.
	Blackhole
)

// Proxy is a running fault proxy. Create it with New; it is safe for concurrent use.
type Proxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]struct{}
	fault    Fault
	budget   int // replies still to fault; < 0: all of them
	closed   bool
	stopped  bool
	acceptWG sync.WaitGroup

	accepted atomic.Int64
	dropped  atomic.Int64
}

// New starts a proxy on 127.0.0.1 (a free port) that forwards to target.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	return p, nil
}

// Addr is the host:port clients dial.
func (p *Proxy) Addr() string { return p.addr }

// Accepted is the number of client connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Dropped is the number of server replies swallowed so far.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Set applies f to every request from now on (Pass restores normal service).
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.fault, p.budget = f, -1
	p.mu.Unlock()
}

// DropReplies applies f (DropReplyAndClose or DropReplyAndHang) to the next n
// replies, then passes again.
func (p *Proxy) DropReplies(n int, f Fault) {
	p.mu.Lock()
	p.fault, p.budget = f, n
	p.mu.Unlock()
}

// takeFault returns the fault to apply to the reply about to be forwarded.
func (p *Proxy) takeFault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.fault {
	case DropReplyAndClose, DropReplyAndHang:
		if p.budget == 0 {
			return Pass
		}
		if p.budget > 0 {
			p.budget--
		}
		return p.fault
	}
	return p.fault
}

func (p *Proxy) currentFault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// CutAll closes every open connection, both ways; new connections are accepted.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Stop closes the listener and every connection: clients get "connection
// refused" until Start.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.stopped || p.closed {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.acceptWG.Wait()
}

// Start listens again on the same address after Stop.
func (p *Proxy) Start() error {
	p.mu.Lock()
	if !p.stopped || p.closed {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.stopped = false
	p.mu.Unlock()
	p.serve(ln)
	return nil
}

// Close stops the proxy for good.
func (p *Proxy) Close() error {
	p.Stop()
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return nil
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.acceptWG.Add(1)
	go func() {
		defer p.acceptWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			if !p.track(c) {
				c.Close()
				return
			}
			go p.handle(c)
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *Proxy) handle(client net.Conn) {
	if p.currentFault() == Blackhole {
		// Read and discard until the client gives up or the proxy is cut.
		_, _ = io.Copy(io.Discard, client)
		p.untrack(client)
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(server) {
		server.Close()
		p.untrack(client)
		return
	}
	done := make(chan struct{}, 2)
	go func() { // client → server
		_, _ = io.Copy(server, client)
		done <- struct{}{}
	}()
	go func() { // server → client, one read (a reply, or part of one) at a time
		buf := make([]byte, 32<<10)
		hang := false
		for {
			n, err := server.Read(buf)
			if n > 0 && !hang {
				switch p.takeFault() {
				case DropReplyAndClose:
					p.dropped.Add(1)
					p.untrack(client, server)
					done <- struct{}{}
					return
				case DropReplyAndHang, Blackhole:
					p.dropped.Add(1)
					hang = true
				default:
					if _, werr := client.Write(buf[:n]); werr != nil {
						err = werr
					}
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}()
	<-done
	p.untrack(client, server)
}
