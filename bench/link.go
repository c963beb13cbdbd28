package bench

import (
	"errors"

	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// linkProfile shapes a TCP link: one-way delay with jitter, and a rate cap
// in each direction.
type linkProfile struct {
	Name    string
	Delay   time.Duration // one way
	Jitter  time.Duration
	BitRate int64 // bits per second, each direction
}

// profile2G is a rural 2G (EDGE) link: about 250 kbit/s and 400 ms of
// round-trip latency with jitter, the figures of the reliability issue's
// 2G profile.
var profile2G = linkProfile{Name: "2G", Delay: 200 * time.Millisecond, Jitter: 40 * time.Millisecond, BitRate: 250_000}

// shaper is a loopback TCP proxy that delays and throttles what crosses
// it. The kernel here has no netem, so the link is simulated in-process;
// it keeps ordering (a TCP stream) and applies the delay to each chunk as
// it arrives, then paces writes at the bit rate.
type shaper struct {
	ln     net.Listener
	target string
	prof   linkProfile
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func startShaper(target string, prof linkProfile) (*shaper, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &shaper{ln: ln, target: target, prof: prof}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *shaper) Addr() string { return s.ln.Addr().String() }

func (s *shaper) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", s.target)
		if err != nil {
			c.Close()
			continue
		}
		s.mu.Lock()
		s.conns = append(s.conns, c, up)
		s.mu.Unlock()
		s.wg.Add(2)
		go s.pipe(up, c)
		go s.pipe(c, up)
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst through the shaped link.
func (s *shaper) pipe(dst, src net.Conn) {
	defer s.wg.Done()
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 16<<10)
			n, err := src.Read(buf)
			if n > 0 {
				j := time.Duration(0)
				if s.prof.Jitter > 0 {
					j = time.Duration(rand.Int64N(int64(2*s.prof.Jitter))) - s.prof.Jitter
				}
				q <- chunk{buf[:n], time.Now().Add(s.prof.Delay + j)}
			}
			if err != nil {
				return
			}
		}
	}()
	var last time.Time // chunks stay in order even when jitter says otherwise
	for c := range q {
		due := c.due
		if due.Before(last) {
			due = last
		}
		last = due
		time.Sleep(time.Until(due))
		// Pace at the bit rate, in slices of 1 KiB so a large chunk does
		// not arrive all at once after a long silence.
		for len(c.data) > 0 {
			n := min(len(c.data), 1024)
			start := time.Now()
			if _, err := dst.Write(c.data[:n]); err != nil {
				src.Close()
				return
			}
			c.data = c.data[n:]
			if s.prof.BitRate > 0 {
				time.Sleep(time.Duration(int64(n)*8*int64(time.Second)/s.prof.BitRate) - time.Since(start))
			}
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// Close stops the proxy and its connections.
func (s *shaper) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
