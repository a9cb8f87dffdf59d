// Package zeros tells all-zero bytes apart: disk images are mostly zeros,
// and the readers skip them (holes in a spool, empty sectors of an
// unreferenced view) rather than write or scan them.
package zeros

import "bytes"

// page is compared against; it is never written.
var page [64 << 10]byte

// All reports whether every byte of b is zero. It compares with
// bytes.Equal, which uses vector instructions: a byte-wise test cost as
// much as inflating the gzip stream being spooled.
func All(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(page))
		if !bytes.Equal(b[:n], page[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
