package scope_test

import (
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
)

// The tests that must behave the same on both stores run on each
// (relaistest.EachEngine); pgtest starts the PostgreSQL they need.
func TestMain(m *testing.M) { pgtest.Main(m) }
