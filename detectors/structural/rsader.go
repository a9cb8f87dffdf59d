package structural

import (
	"bytes"
	"encoding/binary"
)

// minRSADERLen is the smallest outer SEQUENCE content considered: a 512-bit
// PKCS#1 key is about 310 bytes.
const minRSADERLen = 256

// rsaDERAt tries to parse an RSA private key whose SEQUENCE starts at buf[i].
func rsaDERAt(buf []byte, i int) (int, KeyInfo, bool) {
	l := int(binary.BigEndian.Uint16(buf[i+2:]))
	total := 4 + l
	if l < minRSADERLen || total > len(buf)-i {
		return 0, KeyInfo{}, false
	}
	if buf[i+4] != 0x02 || buf[i+5] != 0x01 || buf[i+6] != 0x00 {
		return 0, KeyInfo{}, false
	}
	content := buf[i+4 : i+total]
	switch buf[i+7] {
	case tagInteger: // PKCS#1: n follows the version
		if k, ok := parsePKCS1(content); ok {
			return total, k.info(), true
		}
	case tagSequence: // PKCS#8: AlgorithmIdentifier follows the version
		r := derReader{b: content}
		r.smallInt()
		alg := derReader{b: r.next(tagSequence)}
		key := r.next(tagOctetString)
		oid := alg.next(tagOID)
		if r.bad || alg.bad || (!bytes.Equal(oid, oidRSA) && !bytes.Equal(oid, oidRSAPSS)) {
			return 0, KeyInfo{}, false
		}
		inner, ok := outerSequence(key)
		if !ok {
			return 0, KeyInfo{}, false
		}
		if k, ok := parsePKCS1(inner); ok {
			return total, k.info(), true
		}
	}
	return 0, KeyInfo{}, false
}

// DERSecret returns the fingerprinted secret of a DER key found by
// FindRSAPrivateDER: the bytes of the outer SEQUENCE, header included. It is
// a sub-slice of buf (not a copy), or nil if the range is out of bounds.
func DERSecret(buf []byte, off, length int) []byte {
	if off < 0 || length <= 0 || off > len(buf) || length > len(buf)-off {
		return nil
	}
	return buf[off : off+length : off+length]
}
