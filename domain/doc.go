// Package domain is the médiation numérique domain as La Coop de la
// médiation numérique (ANCT) defines it: what the synced tables may hold
// and what erasing a person means. The tables themselves are created by
// migrations/domain; this package says what their values mean.
//
// Enums (enums.go) are the values stored in the tables and their official
// French labels, in the order people see them. The same labels fill the
// _labels table by migration, for SQL readers and SDKs in other
// languages; a test keeps the two equal.
//
// Rules (rules.go) are written once each: a stable name, an SQL predicate
// over one row, and a French message. The same text becomes the arms of
// the devices' BEFORE INSERT/UPDATE check triggers (DeviceRuleCases,
// triggers.go), so a
// bad row fails in the application at write time, and a check of every
// pushed batch on the server (BeforeApply and AfterApply, check.go). The server refuses a
// batch that makes a row break a rule the row did not break before it:
// cell-by-cell merging can assemble, from two valid writes, a row neither
// wrote, and a row already invalid must not block edits that leave it no
// worse.
//
// Erasure (erase.go) anonymises a beneficiary with ordinary writes, so it
// reaches every replica like any edit; the triggers and the server's
// check then clear the person's values wherever else they linger. When a
// concurrent edit would keep a personal value alive, the server completes
// the erasure itself instead of refusing it: erasure always wins.
package domain
