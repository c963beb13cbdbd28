package syncproto

import (
	"encoding/json"
	"fmt"
)

// Version identifies one write of one cell: when it happened (hlc) and
// which node wrote it. Node ids are device ids (or the server's own id for
// writes it makes), so the tie breaker is stable and global.
type Version struct {
	HLC  Timestamp
	Node string
}

// IsZero reports whether v is the absent version (a cell never written).
func (v Version) IsZero() bool { return v.HLC == 0 && v.Node == "" }

// Compare orders versions totally: by hlc, then by node. This is the whole
// last-writer-wins rule; everything that decides a winner calls it.
func Compare(a, b Version) int {
	switch {
	case a.HLC < b.HLC:
		return -1
	case a.HLC > b.HLC:
		return 1
	case a.Node < b.Node:
		return -1
	case a.Node > b.Node:
		return 1
	}
	return 0
}

// Beats reports whether a wins over b.
func (a Version) Beats(b Version) bool { return Compare(a, b) > 0 }

func (v Version) String() string { return fmt.Sprintf("%s@%s", v.HLC, v.Node) }

// MarshalJSON encodes a version as a compact pair [hlc, node].
func (v Version) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]any{int64(v.HLC), v.Node})
}

// UnmarshalJSON decodes the pair written by MarshalJSON.
func (v *Version) UnmarshalJSON(b []byte) error {
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if len(pair) != 2 {
		return fmt.Errorf("version: want [hlc, node], got %d elements", len(pair))
	}
	var hlc int64
	if err := json.Unmarshal(pair[0], &hlc); err != nil {
		return fmt.Errorf("version hlc: %w", err)
	}
	var node string
	if err := json.Unmarshal(pair[1], &node); err != nil {
		return fmt.Errorf("version node: %w", err)
	}
	v.HLC, v.Node = Timestamp(hlc), node
	return nil
}
