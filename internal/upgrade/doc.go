// Package upgrade keeps what an upgrade in place is checked against:
// a server data directory and a device replica written by an older
// storage layout (testdata/), and the logical content they hold
// (testdata/golden.json), which a converted copy must still hold.
//
// The fixtures are written by TestFixtures with -update, from the code
// of the commit named in testdata/README.md; they are never rewritten by
// a later layout, since their point is to be old.
package upgrade

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Golden is the logical content of the fixtures: what a replica holds,
// whatever its layout stores it as.
type Golden struct {
	// WrittenBy is the commit whose code wrote the fixtures.
	WrittenBy string  `json:"written_by"`
	Server    Content `json:"server"`
	Device    Content `json:"device"`
	// DeviceAside is an older device of a newer server: it keeps aside
	// the cells of a column and a table its schema does not know.
	DeviceAside Content `json:"device_aside"`
}

// Content is one replica's logical content. Each list is in a stable
// order (see the tags); values are JSON numbers (json.Number once read
// back), strings or null, as SQLite returned them.
type Content struct {
	// Tables holds the rows of every domain table, by table, in id order.
	Tables map[string][]map[string]any `json:"tables"`
	// Cells is every cell with its version (and on the server its pull
	// sequence and its row's owner), in (tbl, pk, col) order. A cell of
	// the column _deleted is a row's tombstone.
	Cells []map[string]any `json:"cells"`
	// Conflicts is the conflict log, in id order (the server's).
	Conflicts []map[string]any `json:"conflicts"`
	// Outbox is the device's unacknowledged writes, in id order.
	Outbox []map[string]any `json:"outbox,omitempty"`
	// Rejected is the device's refused writes, in id order.
	Rejected []map[string]any `json:"rejected,omitempty"`
	// Replica is the replica's identity and counters (_replica).
	Replica map[string]any `json:"replica"`
	// Device is the device's link to its server (_device), tokens left out.
	Device map[string]any `json:"device,omitempty"`
}

// ReadGolden reads a golden file.
func ReadGolden(path string) (*Golden, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read golden: %w", err)
	}
	// Clock readings pass 2^53: they stay json.Number, not float64.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var g Golden
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("read golden %s: %w", path, err)
	}
	return &g, nil
}
