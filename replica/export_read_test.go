package replica

// SetOwnersPerQuery lets tests merge several streams with few owners; it
// returns a function that restores the bound.
func SetOwnersPerQuery(n int) (restore func()) {
	old := ownersPerQuery
	ownersPerQuery = n
	return func() { ownersPerQuery = old }
}
