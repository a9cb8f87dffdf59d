package structural

import (
	"bytes"
	"math/big"
)

// DER tags used by the key parsers.
const (
	tagInteger     = 0x02
	tagBitString   = 0x03
	tagOctetString = 0x04
	tagNull        = 0x05
	tagOID         = 0x06
	tagSequence    = 0x30
)

// derTLV splits the first DER (or definite-length BER) element off b. It
// accepts long-form lengths of up to 3 bytes (16 MiB), which covers every
// key, and rejects indefinite lengths.
func derTLV(b []byte) (tag byte, content, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag = b[0]
	l := int(b[1])
	hdr := 2
	if l&0x80 != 0 {
		nb := l & 0x7f
		if nb == 0 || nb > 3 || len(b) < 2+nb {
			return 0, nil, nil, false
		}
		l = 0
		for _, c := range b[2 : 2+nb] {
			l = l<<8 | int(c)
		}
		hdr += nb
	}
	if l > len(b)-hdr {
		return 0, nil, nil, false
	}
	return tag, b[hdr : hdr+l : hdr+l], b[hdr+l:], true
}

// derReader walks the elements of a constructed value.
type derReader struct {
	b   []byte
	bad bool
}

// next returns the content of the next element, which must carry tag.
func (r *derReader) next(tag byte) []byte {
	if r.bad {
		return nil
	}
	t, c, rest, ok := derTLV(r.b)
	if !ok || t != tag {
		r.bad = true
		return nil
	}
	r.b = rest
	return c
}

// posInt returns the next INTEGER, which must be positive and non-empty.
func (r *derReader) posInt() *big.Int {
	c := r.next(tagInteger)
	if r.bad || len(c) == 0 || c[0]&0x80 != 0 {
		r.bad = true
		return nil
	}
	return new(big.Int).SetBytes(c)
}

// smallInt returns the next INTEGER, which must fit in one byte (versions).
func (r *derReader) smallInt() int {
	c := r.next(tagInteger)
	if r.bad || len(c) != 1 || c[0]&0x80 != 0 {
		r.bad = true
		return -1
	}
	return int(c[0])
}

// rsaKey holds the public half of a parsed RSA private key.
type rsaKey struct{ n, e *big.Int }

// parsePKCS1 parses the content of a PKCS#1 RSAPrivateKey SEQUENCE (two-prime,
// version 0) and checks p*q == n and that e and d are sane. All of the content
// must be consumed.
func parsePKCS1(content []byte) (rsaKey, bool) {
	r := derReader{b: content}
	if r.smallInt() != 0 {
		return rsaKey{}, false
	}
	n := r.posInt()
	e := r.posInt()
	d := r.posInt()
	p := r.posInt()
	q := r.posInt()
	for range 3 { // dP, dQ, qInv
		r.posInt()
	}
	if r.bad || len(r.b) != 0 {
		return rsaKey{}, false
	}
	if n.BitLen() < 256 || n.BitLen() > 16384 || e.Cmp(big.NewInt(3)) < 0 || e.Cmp(n) >= 0 ||
		d.Cmp(n) >= 0 || p.BitLen() < 64 || q.BitLen() < 64 {
		return rsaKey{}, false
	}
	// Cheap size check before the multiplication.
	if pb := p.BitLen() + q.BitLen(); pb != n.BitLen() && pb != n.BitLen()+1 {
		return rsaKey{}, false
	}
	if new(big.Int).Mul(p, q).Cmp(n) != 0 {
		return rsaKey{}, false
	}
	return rsaKey{n: n, e: e}, true
}

func (k rsaKey) info() KeyInfo {
	return KeyInfo{Type: "rsa", Bits: k.n.BitLen(), KeyFingerprint: rsaSSHFingerprint(k.n, k.e)}
}

// Algorithm OIDs (DER content bytes).
var (
	oidRSA        = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01}
	oidRSAPSS     = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a}
	oidEC         = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01}
	oidDSA        = []byte{0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01}
	oidEd25519    = []byte{0x2b, 0x65, 0x70}
	oidX25519     = []byte{0x2b, 0x65, 0x6e}
	oidEd448      = []byte{0x2b, 0x65, 0x71}
	oidX448       = []byte{0x2b, 0x65, 0x6f}
	oidP256       = []byte{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidP384       = []byte{0x2b, 0x81, 0x04, 0x00, 0x22}
	oidP521       = []byte{0x2b, 0x81, 0x04, 0x00, 0x23}
	oidSecp256k1  = []byte{0x2b, 0x81, 0x04, 0x00, 0x0a}
	oidP224       = []byte{0x2b, 0x81, 0x04, 0x00, 0x21}
	oidBrainpool  = []byte{0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01} // prefix
	oidPBES2      = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d}
	oidPKCS12PBE  = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01} // prefix
	oidPKCS5PBES1 = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05}       // prefix
)

// curveInfo maps a named-curve OID to its SSH curve name and bit size.
func curveInfo(oid []byte) (sshName string, bits int, ok bool) {
	switch {
	case bytes.Equal(oid, oidP256):
		return "nistp256", 256, true
	case bytes.Equal(oid, oidP384):
		return "nistp384", 384, true
	case bytes.Equal(oid, oidP521):
		return "nistp521", 521, true
	case bytes.Equal(oid, oidSecp256k1):
		return "", 256, true
	case bytes.Equal(oid, oidP224):
		return "", 224, true
	case len(oid) == len(oidBrainpool)+1 && bytes.HasPrefix(oid, oidBrainpool):
		// brainpoolP160r1 ... brainpoolP512r1 are arcs 1, 3, ... 13.
		if arc := oid[len(oid)-1]; arc >= 1 && arc <= 13 && arc%2 == 1 {
			return "", brainpoolBits[arc/2], true
		}
	}
	return "", 0, false
}

// brainpoolBits are the sizes of the brainpoolPxxxr1 curves by arc/2.
var brainpoolBits = [7]int{160, 192, 224, 256, 320, 384, 512}
