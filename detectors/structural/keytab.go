package structural

import (
	"encoding/binary"
	"strings"
)

const (
	// maxKeytabEntries bounds the entry walk.
	maxKeytabEntries = 4096
	// maxKeytabEntryLen bounds one entry (real ones are under 300 bytes).
	maxKeytabEntryLen = 1 << 16
)

// keytabKeyLen maps Kerberos enctypes to their key length.
var keytabKeyLen = map[uint16]int{
	1: 8, 2: 8, 3: 8, // des-cbc-crc, des-cbc-md4, des-cbc-md5
	16: 24,         // des3-cbc-sha1
	17: 16, 18: 32, // aes128/256-cts-hmac-sha1-96
	19: 16, 20: 32, // aes128-cts-hmac-sha256-128, aes256-cts-hmac-sha384-192
	23: 16, 24: 16, // rc4-hmac, rc4-hmac-exp
	25: 16, 26: 32, // camellia128/256-cts-cmac
}

// ParseKeytab walks an MIT Kerberos keytab (format 0x0502) starting at b[0]
// and returns the number of bytes that belong to it (through the last valid
// entry, deleted-entry holes included) and the distinct principal names
// ("comp1/comp2@REALM"). The walk stops at an end marker, at the end of b, or
// at the first entry that does not parse; at least one valid entry is needed.
func ParseKeytab(b []byte) (n int, principals []string, err error) {
	if len(b) < 2 || b[0] != 0x05 || b[1] != 0x02 {
		return 0, nil, notKey("keytab: bad version header")
	}
	off := 2
	seen := map[string]bool{}
	valid := 0
	for range maxKeytabEntries {
		if len(b)-off < 4 {
			break
		}
		size := int32(binary.BigEndian.Uint32(b[off:]))
		if size == 0 {
			break
		}
		if size < 0 {
			hole := -int(size)
			if hole > maxKeytabEntryLen || hole > len(b)-off-4 {
				break
			}
			off += 4 + hole
			continue
		}
		if int(size) > maxKeytabEntryLen || int(size) > len(b)-off-4 {
			break
		}
		name, ok := parseKeytabEntry(b[off+4 : off+4+int(size)])
		if !ok {
			break
		}
		off += 4 + int(size)
		n = off
		valid++
		if !seen[name] {
			seen[name] = true
			principals = append(principals, name)
		}
	}
	if valid == 0 {
		return 0, nil, notKey("keytab: no valid entry")
	}
	return n, principals, nil
}

// parseKeytabEntry parses one entry body and returns its principal.
func parseKeytabEntry(e []byte) (string, bool) {
	r := keytabReader{b: e}
	ncomp := int(r.u16())
	realm := r.counted()
	if r.bad || ncomp < 1 || ncomp > 16 || !printableName(realm) {
		return "", false
	}
	comps := make([]string, 0, ncomp)
	for range ncomp {
		c := r.counted()
		if r.bad || !printableName(c) {
			return "", false
		}
		comps = append(comps, string(c))
	}
	r.u32() // name type
	r.u32() // timestamp
	r.u8()  // vno8
	enctype := r.u16()
	key := r.counted()
	if r.bad {
		return "", false
	}
	if want, ok := keytabKeyLen[enctype]; !ok || len(key) != want {
		return "", false
	}
	// Optional 32-bit vno and flags may follow; anything longer is not a keytab.
	if len(r.b) > 8 {
		return "", false
	}
	return strings.Join(comps, "/") + "@" + string(realm), true
}

func printableName(s []byte) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

type keytabReader struct {
	b   []byte
	bad bool
}

func (r *keytabReader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *keytabReader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *keytabReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *keytabReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *keytabReader) counted() []byte {
	n := int(r.u16())
	return r.take(n)
}
