package structural

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"math/big"
	"strings"
)

const (
	pgpBeginPrivate = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
	pgpEndPrivate   = "-----END PGP PRIVATE KEY BLOCK-----"
	// maxPGPPackets bounds the packet walk looking for secret material.
	maxPGPPackets = 256
)

// ParsePGPPrivate parses an armoured OpenPGP private key block: it dearmours
// it (base64, CRC24 checked when present) and parses the first secret-key
// packet (tag 5) for algorithm, bits and S2K usage (Encrypted). When the
// primary key is a GnuPG stub without secret material (gnu-dummy, card), the
// first secret subkey (tag 7) that has material is described instead.
// Bits follow GnuPG's convention (curve bits, e.g. 255 for Ed25519).
func ParsePGPPrivate(block []byte) (KeyInfo, error) {
	if len(block) > maxArmoredLen {
		return KeyInfo{}, notKey("PGP block longer than %d bytes", maxArmoredLen)
	}
	body, err := pgpDearmor(block)
	if err != nil && bytes.IndexByte(block, '\\') >= 0 {
		body, err = pgpDearmor(UnescapeArmored(block))
	}
	if err != nil {
		return KeyInfo{}, err
	}
	first := true
	for range maxPGPPackets {
		if len(body) == 0 {
			break
		}
		tag, pkt, rest, ok := pgpPacket(body)
		if !ok {
			return KeyInfo{}, notKey("PGP: bad packet header")
		}
		body = rest
		if first && tag != 5 {
			return KeyInfo{}, notKey("PGP: first packet is not a secret key")
		}
		first = false
		if tag != 5 && tag != 7 {
			continue
		}
		info, stub, err := pgpSecretKey(pkt)
		if err != nil {
			return KeyInfo{}, err
		}
		if !stub {
			return info, nil
		}
	}
	return KeyInfo{}, notKey("PGP: no secret key material")
}

// pgpDearmor extracts and decodes the base64 body of a private key block.
func pgpDearmor(block []byte) ([]byte, error) {
	i := bytes.Index(block, []byte(pgpBeginPrivate))
	if i < 0 {
		return nil, notKey("no PGP private key block")
	}
	text := block[i+len(pgpBeginPrivate):]
	end := bytes.Index(text, []byte(pgpEndPrivate))
	if end < 0 {
		return nil, notKey("PGP block without END line")
	}
	lines := strings.Split(string(text[:end]), "\n")
	// Skip the rest of the BEGIN line, then headers up to the blank line.
	k := 1
	for k < len(lines) && strings.TrimSpace(lines[k]) != "" {
		if !strings.Contains(lines[k], ": ") {
			break // no blank line after headers (tolerated: no headers)
		}
		k++
	}
	var b64 strings.Builder
	var crc string
	for _, l := range lines[k:] {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if l[0] == '=' && len(l) == 5 {
			crc = l[1:]
			break
		}
		b64.WriteString(l)
	}
	body, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil || len(body) == 0 {
		return nil, notKey("PGP: bad base64 body")
	}
	if crc != "" {
		c, err := base64.StdEncoding.DecodeString(crc)
		if err != nil || len(c) != 3 {
			return nil, notKey("PGP: bad CRC24 line")
		}
		if want := uint32(c[0])<<16 | uint32(c[1])<<8 | uint32(c[2]); crc24(body) != want {
			return nil, notKey("PGP: CRC24 mismatch")
		}
	}
	return body, nil
}

// crc24 is the OpenPGP armour checksum (RFC 4880 section 6.1).
func crc24(b []byte) uint32 {
	crc := uint32(0xB704CE)
	for _, c := range b {
		crc ^= uint32(c) << 16
		for range 8 {
			crc <<= 1
			if crc&0x1000000 != 0 {
				crc ^= 0x1864CFB
			}
		}
	}
	return crc & 0xFFFFFF
}

// pgpPacket splits one packet (old or new format header, no partial lengths).
func pgpPacket(b []byte) (tag int, body, rest []byte, ok bool) {
	if len(b) < 2 || b[0]&0x80 == 0 {
		return 0, nil, nil, false
	}
	var n, hdr int
	if b[0]&0x40 != 0 {
		tag = int(b[0] & 0x3f)
		switch o := int(b[1]); {
		case o < 192:
			n, hdr = o, 2
		case o < 224:
			if len(b) < 3 {
				return 0, nil, nil, false
			}
			n, hdr = (o-192)<<8+int(b[2])+192, 3
		case o == 255:
			if len(b) < 6 {
				return 0, nil, nil, false
			}
			n, hdr = int(binary.BigEndian.Uint32(b[2:])), 6
		default:
			return 0, nil, nil, false // partial lengths never frame key packets
		}
	} else {
		tag = int(b[0]>>2) & 0xf
		switch b[0] & 3 {
		case 0:
			n, hdr = int(b[1]), 2
		case 1:
			if len(b) < 3 {
				return 0, nil, nil, false
			}
			n, hdr = int(binary.BigEndian.Uint16(b[1:])), 3
		case 2:
			if len(b) < 5 {
				return 0, nil, nil, false
			}
			n, hdr = int(binary.BigEndian.Uint32(b[1:])), 5
		default:
			return 0, nil, nil, false
		}
	}
	if n < 0 || n > len(b)-hdr {
		return 0, nil, nil, false
	}
	return tag, b[hdr : hdr+n], b[hdr+n:], true
}

// pgpMPI reads an OpenPGP multiprecision integer (2-byte bit count + bytes).
func pgpMPI(b []byte) (bits int, val, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	bits = int(binary.BigEndian.Uint16(b))
	n := (bits + 7) / 8
	if n == 0 || n > len(b)-2 {
		return 0, nil, nil, false
	}
	return bits, b[2 : 2+n], b[2+n:], true
}

// OpenPGP curve OIDs (without the length byte).
var (
	pgpOIDEd25519    = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01}
	pgpOIDCurve25519 = []byte{0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01}
	pgpOIDEd448      = []byte{0x2b, 0x65, 0x71}
	pgpOIDX448       = []byte{0x2b, 0x65, 0x6f}
)

// pgpSecretKey parses a secret key or subkey packet body. stub reports a
// GnuPG stub (gnu-dummy or divert-to-card) that holds no secret material.
func pgpSecretKey(p []byte) (info KeyInfo, stub bool, err error) {
	if len(p) < 6 {
		return KeyInfo{}, false, notKey("PGP: truncated key packet")
	}
	ver := p[0]
	var algo byte
	var pub []byte
	switch ver {
	case 4:
		algo, pub = p[5], p[6:]
	case 5, 6:
		if len(p) < 10 {
			return KeyInfo{}, false, notKey("PGP: truncated key packet")
		}
		algo = p[5]
		n := int(binary.BigEndian.Uint32(p[6:]))
		if n < 0 || n > len(p)-10 {
			return KeyInfo{}, false, notKey("PGP: bad public key length")
		}
		pub = p[10:]
	default:
		return KeyInfo{}, false, notKey("PGP: unsupported key packet version %d", ver)
	}
	rest, info, ok := pgpPublicMaterial(algo, pub)
	if !ok {
		return KeyInfo{}, false, notKey("PGP: bad public key material")
	}
	if len(rest) == 0 {
		return KeyInfo{}, false, notKey("PGP: no secret key fields")
	}
	usage := rest[0]
	sec := rest[1:]
	switch {
	case usage == 0:
		if ver == 4 {
			if len(sec) < 3 {
				return KeyInfo{}, false, notKey("PGP: truncated secret material")
			}
			var sum uint16
			for _, c := range sec[:len(sec)-2] {
				sum += uint16(c)
			}
			if sum != binary.BigEndian.Uint16(sec[len(sec)-2:]) {
				return KeyInfo{}, false, notKey("PGP: secret material checksum mismatch")
			}
		}
	case usage == 254 || usage == 255 || usage == 253:
		info.Encrypted = true
		// GnuPG S2K extension 101 marks keys whose secret is absent.
		if ver == 4 && len(sec) >= 6 && sec[1] == 101 && bytes.Equal(sec[2:5], []byte("GNU")) {
			return info, true, nil
		}
		if ver == 4 && len(sec) >= 7 && sec[2] == 101 && bytes.Equal(sec[3:6], []byte("GNU")) {
			return info, true, nil
		}
	default:
		info.Encrypted = true // legacy: the usage octet is a cipher id
	}
	return info, false, nil
}

// pgpPublicMaterial parses the algorithm-specific public fields.
func pgpPublicMaterial(algo byte, b []byte) (rest []byte, info KeyInfo, ok bool) {
	mpis := func(n int) ([][]byte, int, bool) {
		var vals [][]byte
		firstBits := 0
		for i := range n {
			bits, v, r, ok := pgpMPI(b)
			if !ok {
				return nil, 0, false
			}
			if i == 0 {
				firstBits = bits
			}
			vals, b = append(vals, v), r
		}
		return vals, firstBits, true
	}
	switch algo {
	case 1, 2, 3: // RSA
		v, bits, ok := mpis(2)
		if !ok {
			return nil, KeyInfo{}, false
		}
		n, e := new(big.Int).SetBytes(v[0]), new(big.Int).SetBytes(v[1])
		return b, KeyInfo{Type: "rsa", Bits: bits, KeyFingerprint: rsaSSHFingerprint(n, e)}, true
	case 17: // DSA
		v, bits, ok := mpis(4)
		if !ok {
			return nil, KeyInfo{}, false
		}
		var ints [4]*big.Int
		for i := range ints {
			ints[i] = new(big.Int).SetBytes(v[i])
		}
		return b, KeyInfo{Type: "dsa", Bits: bits, KeyFingerprint: dsaSSHFingerprint(ints[0], ints[1], ints[2], ints[3])}, true
	case 16, 20: // Elgamal
		_, bits, ok := mpis(3)
		return b, KeyInfo{Type: "elgamal", Bits: bits}, ok
	case 18, 19, 22: // ECDH, ECDSA, EdDSA (legacy)
		if len(b) < 1 || int(b[0]) == 0 || int(b[0]) == 0xff || int(b[0]) > len(b)-1 {
			return nil, KeyInfo{}, false
		}
		oid := b[1 : 1+int(b[0])]
		b = b[1+int(b[0]):]
		_, point, r, ok := pgpMPI(b)
		if !ok {
			return nil, KeyInfo{}, false
		}
		b = r
		if algo == 18 { // KDF parameters
			if len(b) < 1 || int(b[0]) > len(b)-1 {
				return nil, KeyInfo{}, false
			}
			b = b[1+int(b[0]):]
		}
		info := KeyInfo{Type: "ecdh"}
		switch algo {
		case 19:
			info.Type = "ecdsa"
		case 22:
			info.Type = "eddsa"
		}
		switch {
		case bytes.Equal(oid, pgpOIDEd25519):
			info.Bits = 255
			if algo == 22 {
				info.Type = "ed25519"
				if len(point) == 33 && point[0] == 0x40 {
					info.KeyFingerprint = ed25519SSHFingerprint(point[1:])
				}
			}
		case bytes.Equal(oid, pgpOIDCurve25519):
			info.Bits = 255
		case bytes.Equal(oid, pgpOIDEd448), bytes.Equal(oid, pgpOIDX448):
			info.Bits = 448
		default:
			name, bits, known := curveInfo(oid)
			if !known {
				return nil, KeyInfo{}, false
			}
			info.Bits = bits
			if algo == 19 && len(point) > 0 && point[0] == 4 {
				info.KeyFingerprint = ecdsaSSHFingerprint(name, point)
			}
		}
		return b, info, true
	case 25, 26, 27, 28: // X25519, X448, Ed25519, Ed448 (RFC 9580)
		k := pgpNativeKeys[algo-25]
		if len(b) < k.size {
			return nil, KeyInfo{}, false
		}
		info := KeyInfo{Type: k.typ, Bits: k.bits}
		size := k.size
		if algo == 27 {
			info.KeyFingerprint = ed25519SSHFingerprint(b[:32])
		}
		return b[size:], info, true
	}
	return nil, KeyInfo{}, false
}

// pgpNativeKeys describes RFC 9580 algorithms 25..28 (fixed-size keys).
var pgpNativeKeys = [4]struct {
	typ        string
	size, bits int
}{
	{"x25519", 32, 255}, {"x448", 56, 448}, {"ed25519", 32, 255}, {"ed448", 57, 448},
}
