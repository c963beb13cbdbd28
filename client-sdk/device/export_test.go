package device

import (
	"context"
	"database/sql"
)

// ResolvePrev works out the prev of the outbox entries the stamping
// trigger left to the SDK, as cutting a batch does.
func ResolvePrev(r *Replica) error {
	return r.db.Write(context.Background(), func(tx *sql.Tx) error { return resolvePrev(context.Background(), tx) })
}
