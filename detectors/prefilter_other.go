//go:build !amd64

package detectors

func supportedVectors() []string { return nil }

func (p *prefilter) filterBlocks(buf []byte, n int, hits []uint64) []uint64 {
	panic("detectors: no vector prefilter on this architecture")
}
