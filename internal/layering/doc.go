// Package layering holds no code that runs: its test keeps the module's
// layers apart. The protocol (syncproto) is pure, so that a second SDK can
// be written from it alone and so that the merge rule can be tested
// without a database; the merge engine (replica) depends on nothing of
// ours but the protocol, so that device and server merge the same way;
// the server and the device SDK never import each other, so that neither
// can lean on the other's internals instead of on the wire contract.
package layering
