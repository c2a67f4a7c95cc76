// Package agentkit is what the guest agent (guest/cmd/govm-agent, inside
// the test guests) and the host tool (internal/govm-host, on the host or
// in L1) share: the formats both ends of a test agree on (transfer
// checksums and streams, crash-consistency records, the disk benchmark's
// figures) and the readers of /proc they both report from.
package agentkit
