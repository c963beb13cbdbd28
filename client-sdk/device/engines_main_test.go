package device_test

import (
	"testing"

	"github.com/relais-numerique/relais/internal/pgtest"
)

// The tests that must behave the same whichever store the server keeps
// (relaistest.EachEngine) run against both; pgtest starts the PostgreSQL
// they need, once, only if one of them asks for it.
func TestMain(m *testing.M) { pgtest.Main(m) }
