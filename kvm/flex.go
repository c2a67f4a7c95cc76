package kvm

// KVM passes lists as a structure with a flexible array member: a header
// that counts the entries, then the entries (kvm_cpuid2, kvm_msrs,
// kvm_irq_routing). packFlex and unpackFlex lay such a structure out in a
// byte buffer and read it back, for ioctlBuf.

// packFlex lays out hdr followed by room for n entries, the first
// len(entries) of them copied from entries (n >= len(entries)).
func packFlex[H, E any](hdr *H, entries []E, n int) []byte {
	off, size := int(sizeOf[H]()), int(sizeOf[E]())
	buf := make([]byte, off+n*size)
	copy(buf, asBytes(hdr))
	for i := range entries {
		copy(buf[off+i*size:], asBytes(&entries[i]))
	}
	return buf
}

// unpackFlex reads the header back from buf into hdr and returns the
// first n entries that follow it; n must be within what packFlex made room
// for.
func unpackFlex[H, E any](buf []byte, hdr *H, n int) []E {
	off, size := int(sizeOf[H]()), int(sizeOf[E]())
	fromBytes(buf, hdr)
	out := make([]E, n)
	for i := range out {
		fromBytes(buf[off+i*size:], &out[i])
	}
	return out
}
