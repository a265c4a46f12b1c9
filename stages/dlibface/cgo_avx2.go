//go:build avx2 && amd64

package dlibface

// Built with -tags avx2, the shim (and dlib's network code, which is templates compiled into
// it) targets x86-64-v3: AVX2 and FMA, faster, but the binary then dies with an illegal
// instruction on CPUs without them. The default build runs on any x86-64.

// #cgo CXXFLAGS: -march=x86-64-v3
import "C"
