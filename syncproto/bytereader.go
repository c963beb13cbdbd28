package syncproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// byteReader reads the varints and strings of the column form, refusing
// anything that runs past the end.
type byteReader struct {
	b   []byte
	off int
}

var errShort = errors.New("unexpected end of data")

func (r *byteReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		if n == 0 {
			return 0, errShort
		}
		return 0, errors.New("varint overflows 64 bits")
	}
	r.off += n
	return v, nil
}

// varint reads a signed varint: encoding/binary's is the zigzag form of
// an unsigned one.
func (r *byteReader) varint() (int64, error) {
	u, err := r.uvarint()
	return unzigzag(u), err
}

// count reads a number of items that each take at least one more byte,
// so that no length read from the input makes us allocate beyond it.
func (r *byteReader) count() (int, error) {
	n, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)-r.off) {
		return 0, fmt.Errorf("count %d exceeds the data", n)
	}
	return int(n), nil
}

func (r *byteReader) bytes() ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, errShort
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

func (r *byteReader) text() (string, error) {
	b, err := r.bytes()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("text is not valid UTF-8")
	}
	return string(b), nil
}

func (r *byteReader) index(n int) (int, error) {
	v, err := r.uvarint()
	if err != nil {
		return 0, err
	}
	if v >= uint64(n) {
		return 0, fmt.Errorf("index %d out of range (%d)", v, n)
	}
	return int(v), nil
}

func (r *byteReader) done() bool { return r.off == len(r.b) }

// zigzag and unzigzag map signed integers to unsigned ones so that
// small magnitudes, negative or not, make short varints.
func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }
