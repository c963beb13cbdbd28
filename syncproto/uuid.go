package syncproto

import (
	"encoding/binary"
)

// ParseUUID reads a UUID in canonical form (lower-case hex, 8-4-4-4-12);
// any other spelling travels as a string, so that it comes back exactly.
// The replicas key rows by the same 16 bytes, so they share this reading.
func ParseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := lowerHex(s[i])
		lo, ok2 := lowerHex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// FormatUUID writes 16 bytes as a canonical UUID, the inverse of ParseUUID.
func FormatUUID(u []byte) string {
	const hex = "0123456789abcdef"
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[u[i]>>4], hex[u[i]&0xf]
		j += 2
	}
	return string(b[:])
}

// isUUIDv7 reports whether u has the version (7) and variant (10) bits
// of RFC 9562's UUIDv7.
func isUUIDv7(u [16]byte) bool { return u[6]>>4 == 7 && u[8]>>6 == 2 }

// uuidTime is a UUIDv7's 48-bit Unix millisecond timestamp.
func uuidTime(u [16]byte) int64 { return int64(binary.BigEndian.Uint64(u[:8]) >> 16) }
