// Package e2e owns govm's end-to-end harness: it boots real Linux guests
// with the real govm binary and reports what the guest printed and how govm
// exited. On a host with VT-x/AMD-V it runs govm directly; on a host whose
// /dev/kvm cannot run guest kernels (kvm_pvm), it runs govm inside a nested
// L1 guest under QEMU TCG with emulated AMD SVM (scripts/l1-init). The
// assets it boots are built by scripts/assets.sh into build/.
package e2e

// The harness, one concern per file: assets.go (what scripts/assets.sh
// built and the mode), case.go (a case and its result), runner.go
// (running and retrying), fault.go (which failures are the emulator's),
// direct.go and nested.go (the two ways to run govm), l1.go (the one L1
// launcher, which make run shares), l1script.tmpl (the case as L1 runs
// it), cpio.go (the case's archive for L1).
