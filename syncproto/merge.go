package syncproto

// Outcome is what merging one incoming write does to a replica's cell.
type Outcome uint8

const (
	// Duplicate: the replica holds exactly this write already; nothing
	// changes. Merging is idempotent because of this case.
	Duplicate Outcome = iota + 1
	// Lost: the replica holds a write that beats the incoming one, which
	// is dropped.
	Lost
	// Won: the replica holds no write of the cell, or one the incoming
	// write beats; the incoming value replaces it.
	Won
)

func (o Outcome) String() string {
	switch o {
	case Duplicate:
		return "duplicate"
	case Lost:
		return "lost"
	case Won:
		return "won"
	}
	return "unknown"
}

// Decision is the merge rule's verdict on one incoming write to one cell.
type Decision struct {
	Outcome Outcome
	// Concurrent is set when the incoming write and the held one did not
	// see each other: the writer's prev is not the version held. The
	// outcome is decided by Compare all the same; the write that lost
	// (the held one when the outcome is Won, the incoming one when it is
	// Lost) is a conflict, which the server records.
	Concurrent bool
}

// Decide is the merge rule for one cell, the only one: held is the
// version the replica holds for the cell (the zero Version when it holds
// none; no valid write carries it, see Schema.Check), incoming and prev
// the version of the write that arrives and the version its writer held
// when it wrote.
//
// Decide depends on nothing but the versions, so every replica reaches
// the same verdict on the same pair, whatever arrived first: replicas
// that have merged the same writes hold the same winner (Compare is a
// total order), and two concurrent writes are reported as one conflict
// with the same winner and loser on whichever side sees them meet.
func Decide(held, incoming, prev Version) Decision {
	if held.IsZero() {
		return Decision{Outcome: Won}
	}
	switch c := Compare(incoming, held); {
	case c == 0:
		return Decision{Outcome: Duplicate}
	case c < 0:
		return Decision{Outcome: Lost, Concurrent: Compare(prev, held) != 0}
	default:
		return Decision{Outcome: Won, Concurrent: Compare(prev, held) != 0}
	}
}

// NewestWrites returns, for each row of changes that writes the column
// named by column(table) (no column when ok is false), the index in
// changes of the newest such write: the one that stands once the batch is
// merged, unless the replica holds a newer one (see Decide). The merge
// and the server's scope check both need the owner a batch gives each
// row; this is that rule, written once.
func NewestWrites(changes []Change, column func(table string) (col string, ok bool)) map[RowKey]int {
	newest := map[RowKey]int{}
	for i := range changes {
		c := &changes[i]
		col, ok := column(c.Table)
		if !ok || c.Column != col {
			continue
		}
		k := c.Row()
		if j, seen := newest[k]; !seen || c.Version.Beats(changes[j].Version) {
			newest[k] = i
		}
	}
	return newest
}
