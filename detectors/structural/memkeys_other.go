//go:build !amd64

package structural

// memKeyFilter runs the block filter over blocks [first, first+n) of buf
// (see memKeyBlocksGo).
func memKeyFilter(buf []byte, first, n int, m uint64, out []uint64) int {
	return memKeyBlocksGo(buf, first, n, m, out)
}

// memKeyVectors returns the vector block filters this CPU runs: none here.
func memKeyVectors() map[string]blockFilter { return nil }

// derFilter is memKeyFilter for a search without AES (see derBlocksGo).
func derFilter(buf []byte, first, n int, m uint64, out []uint64) int {
	return derBlocksGo(buf, first, n, m, out)
}

// derVectors returns the vector DER-only block filters this CPU runs: none here.
func derVectors() map[string]blockFilter { return nil }
