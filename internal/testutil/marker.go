package testutil

import "bytes"

// Marker returns n bytes of distinctive file contents: "<<name>>"
// repeated, so that the first occurrence of its first 64 bytes in a raw
// image is the file's first byte.
func Marker(name string, n int) []byte {
	m := []byte("<<" + name + ">>")
	return bytes.Repeat(m, n/len(m)+1)[:n]
}
