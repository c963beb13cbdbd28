package syncproto

// bitWriter packs values of a few bits each, most significant bit first.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint // bits held in acc, fewer than 8 between writes
}

func (w *bitWriter) write(v uint64, n uint) {
	for n > 0 {
		take := min(n, 56-w.nacc)
		w.acc = w.acc<<take | (v>>(n-take))&(1<<take-1)
		w.nacc += take
		n -= take
		for w.nacc >= 8 {
			w.out = append(w.out, byte(w.acc>>(w.nacc-8)))
			w.nacc -= 8
		}
		w.acc &= 1<<w.nacc - 1
	}
}

// flush pads the last byte with zero bits and returns the bytes.
func (w *bitWriter) flush() []byte {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc<<(8-w.nacc)))
		w.acc, w.nacc = 0, 0
	}
	return w.out
}

// bitReader reads what bitWriter wrote.
type bitReader struct {
	b   []byte
	off int // in bits
}

func (r *bitReader) read(n uint) (uint64, error) {
	if r.off+int(n) > 8*len(r.b) {
		return 0, errShort
	}
	var v uint64
	for n > 0 {
		bit := 8 - uint(r.off%8)
		take := min(n, bit)
		cur := uint64(r.b[r.off/8]) >> (bit - take) & (1<<take - 1)
		v = v<<take | cur
		r.off += int(take)
		n -= take
	}
	return v, nil
}

// done reports whether only the zero padding of the last byte is left.
func (r *bitReader) done() bool {
	if (r.off+7)/8 != len(r.b) {
		return false
	}
	if r.off%8 == 0 {
		return true
	}
	return r.b[len(r.b)-1]&(1<<(8-uint(r.off%8))-1) == 0
}
