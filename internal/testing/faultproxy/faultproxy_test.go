package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer answers each line with the same line and counts the lines it got.
func echoServer(t *testing.T) (addr string, lines *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	lines = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					lines.Add(1)
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), lines
}

// ask sends one line on a new connection and returns the answer or the error.
func ask(t *testing.T, addr, line string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return got, err
}

func TestFaults(t *testing.T) {
	target, lines := echoServer(t)
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	if got, err := ask(t, p.Addr(), "one"); err != nil || got != "one\n" {
		t.Fatalf("pass: %q %v", got, err)
	}

	// The server acts on the request, the client never sees the reply.
	p.DropReplies(1, DropReplyAndClose)
	if _, err := ask(t, p.Addr(), "two"); !errors.Is(err, io.EOF) {
		t.Fatalf("drop and close: %v, want EOF", err)
	}
	waitFor(t, func() bool { return lines.Load() == 2 })
	if got, err := ask(t, p.Addr(), "three"); err != nil || got != "three\n" {
		t.Fatalf("after the dropped reply: %q %v", got, err)
	}

	p.DropReplies(1, DropReplyAndHang)
	if _, err := ask(t, p.Addr(), "four"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("drop and hang: %v, want a timeout", err)
	}
	waitFor(t, func() bool { return lines.Load() == 4 })

	p.Set(Blackhole)
	if _, err := ask(t, p.Addr(), "five"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackhole: %v, want a timeout", err)
	}
	if lines.Load() != 4 {
		t.Fatalf("blackhole forwarded: %d lines", lines.Load())
	}
	p.Set(Pass)

	p.Stop()
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("stopped proxy accepted a connection")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(t, p.Addr(), "six"); err != nil || got != "six\n" {
		t.Fatalf("after restart: %q %v", got, err)
	}
	if p.Dropped() != 2 || p.Accepted() < 6 {
		t.Fatalf("dropped %d, accepted %d", p.Dropped(), p.Accepted())
	}
}

func TestCutAll(t *testing.T) {
	target, _ := echoServer(t)
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.conns) == 2 })
	p.CutAll()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after CutAll: %v, want EOF", err)
	}
}

// waitFor polls cond (the proxy's goroutines finish asynchronously).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}
