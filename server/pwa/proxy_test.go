package pwa_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// link stands between the browser and the server, so that "offline" in
// a test is true for every request the browser makes (page, service
// worker, SDK worker alike), not only for what network emulation covers:
// offline, it closes every open connection and each new one at once.
// It can also cut the link in the middle of an answer (CutAfter), as a
// weak mobile network does.
type link struct {
	ln      net.Listener
	backend string
	mu      sync.Mutex
	online  bool
	conns   map[net.Conn]struct{}
	down    atomic.Int64 // bytes from the server to the browser
	cutAt   atomic.Int64 // when > 0: past this many bytes down, go offline
	cutDone chan struct{}
}

func startLink(t testing.TB, backend string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, backend: backend, online: true, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		l.SetOnline(false)
	})
	return l
}

func (l *link) URL() string { return "http://" + l.ln.Addr().String() }

// SetOnline opens or closes the link; closing it drops every connection.
func (l *link) SetOnline(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.online = on
	if !on {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// CutAfter makes the link go offline once n more bytes went down; the
// returned channel is closed then.
func (l *link) CutAfter(n int64) <-chan struct{} {
	l.mu.Lock()
	l.cutDone = make(chan struct{})
	ch := l.cutDone
	l.mu.Unlock()
	l.cutAt.Store(l.down.Load() + n)
	return ch
}

// Down is the number of bytes the server sent through the link.
func (l *link) Down() int64 { return l.down.Load() }

func (l *link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.online {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *link) serve(client net.Conn) {
	if !l.track(client) {
		client.Close()
		return
	}
	server, err := net.Dial("tcp", l.backend)
	if err != nil || !l.track(server) {
		client.Close()
		if server != nil {
			server.Close()
		}
		return
	}
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			total := l.down.Add(int64(n))
			if at := l.cutAt.Load(); at > 0 && total >= at {
				// Send what fits below the cut, then drop everything.
				keep := int64(n) - (total - at)
				if keep > 0 {
					_, _ = client.Write(buf[:keep])
				}
				l.cutAt.Store(0)
				l.SetOnline(false)
				l.mu.Lock()
				if l.cutDone != nil {
					close(l.cutDone)
					l.cutDone = nil
				}
				l.mu.Unlock()
				break
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	client.Close()
	server.Close()
}
