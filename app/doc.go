// Package app is the conseillère's offline app, served by the Relais
// server at /app/ (package server/pwa): a French web app that records
// visits on a tablet or a phone with no network, on the TypeScript device
// SDK (client-sdk/web), installable as a PWA.
//
// The app is written in TypeScript under src/ and static/, and built with
// esbuild (npm run build, see build.mjs) into dist/, which is committed and
// embedded here (Files), so that running the server needs no Node. .ci/run
// rebuilds dist/ and fails if it differs from what is committed.
//
// What the app knows of the domain, enums with their official labels, the
// rules with their French messages, the erasure, comes from package domain
// through Spec, written to src/generated/spec.json by
// `go test ./app -run TestSpecFile -update`; the same test fails when the
// file and package domain disagree. The app never re-writes a rule: it
// runs the rule's own SQL in its local SQLite before saving.
package app
