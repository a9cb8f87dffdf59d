package structural

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/pem"
	"math/big"
	"strings"
)

// ParsePrivateKeyPEM parses an armoured private key block: RSA (PKCS#1,
// including legacy "Proc-Type: 4,ENCRYPTED"), EC (SEC1), DSA, PKCS#8,
// ENCRYPTED PRIVATE KEY (PKCS#8, encrypted: Type "unknown") and OPENSSH
// PRIVATE KEY (openssh-key-v1, plain or encrypted; the public key is stored in
// the clear so KeyFingerprint is always set). Text before the block is
// skipped; JSON/string escaping is undone when the raw text does not decode.
func ParsePrivateKeyPEM(block []byte) (KeyInfo, error) {
	if len(block) > maxArmoredLen {
		return KeyInfo{}, notKey("armoured block longer than %d bytes", maxArmoredLen)
	}
	p, _ := pem.Decode(block)
	if p == nil {
		if u := UnescapeArmored(block); len(u) != len(block) {
			p, _ = pem.Decode(u)
			if p == nil {
				p, _ = pem.Decode(trimLineIndent(u))
			}
		}
	}
	if p == nil {
		// Keys in YAML block scalars (cloud-init, kubeconfig) are indented.
		p, _ = pem.Decode(trimLineIndent(block))
	}
	if p == nil {
		return KeyInfo{}, notKey("no complete PEM block")
	}
	if len(p.Bytes) == 0 {
		return KeyInfo{}, notKey("empty PEM body")
	}
	if legacyEncrypted(p) {
		return legacyEncryptedInfo(p)
	}
	switch p.Type {
	case "RSA PRIVATE KEY":
		seq, ok := outerSequence(p.Bytes)
		if !ok {
			return KeyInfo{}, notKey("RSA key: bad DER")
		}
		k, ok := parsePKCS1(seq)
		if !ok {
			return KeyInfo{}, notKey("RSA key: not a consistent PKCS#1 key")
		}
		return k.info(), nil
	case "EC PRIVATE KEY":
		seq, ok := outerSequence(p.Bytes)
		if !ok {
			return KeyInfo{}, notKey("EC key: bad DER")
		}
		return parseSEC1(seq, nil)
	case "DSA PRIVATE KEY":
		seq, ok := outerSequence(p.Bytes)
		if !ok {
			return KeyInfo{}, notKey("DSA key: bad DER")
		}
		return parseOpenSSLDSA(seq)
	case "PRIVATE KEY":
		return parsePKCS8(p.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return parseEncryptedPKCS8(p.Bytes)
	case "OPENSSH PRIVATE KEY":
		return parseOpenSSHKey(p.Bytes)
	}
	return KeyInfo{}, notKey("unsupported PEM type")
}

// outerSequence returns the content of a DER SEQUENCE that spans all of der.
func outerSequence(der []byte) ([]byte, bool) {
	tag, c, rest, ok := derTLV(der)
	if !ok || tag != tagSequence || len(rest) != 0 {
		return nil, false
	}
	return c, true
}

func legacyEncrypted(p *pem.Block) bool {
	return strings.Contains(p.Headers["Proc-Type"], "ENCRYPTED")
}

// legacyEncryptedInfo handles OpenSSL's traditional encrypted PEM: the DER is
// encrypted with a block cipher named in DEK-Info, so only the label tells the
// key type.
func legacyEncryptedInfo(p *pem.Block) (KeyInfo, error) {
	dek := p.Headers["DEK-Info"]
	cipher, iv, ok := strings.Cut(dek, ",")
	if !ok || cipher == "" || len(iv) < 16 || len(p.Bytes)%8 != 0 {
		return KeyInfo{}, notKey("encrypted PEM without valid DEK-Info")
	}
	info := KeyInfo{Encrypted: true}
	switch p.Type {
	case "RSA PRIVATE KEY":
		info.Type = "rsa"
	case "EC PRIVATE KEY":
		info.Type = "ecdsa"
	case "DSA PRIVATE KEY":
		info.Type = "dsa"
	default:
		info.Type = "unknown"
	}
	return info, nil
}

// parseSEC1 parses an ECPrivateKey SEQUENCE content; curveOID comes from the
// PKCS#8 AlgorithmIdentifier when the key itself omits its parameters.
func parseSEC1(content, curveOID []byte) (KeyInfo, error) {
	r := derReader{b: content}
	if r.smallInt() != 1 {
		return KeyInfo{}, notKey("EC key: bad version")
	}
	scalar := r.next(tagOctetString)
	if r.bad || len(scalar) == 0 || len(scalar) > 66 {
		return KeyInfo{}, notKey("EC key: bad private scalar")
	}
	// Optional [0] parameters and [1] public key.
	for len(r.b) > 0 {
		tag, c, rest, ok := derTLV(r.b)
		if !ok {
			return KeyInfo{}, notKey("EC key: bad DER")
		}
		if tag == 0xa0 {
			if t, oid, _, ok := derTLV(c); ok && t == tagOID {
				curveOID = oid
			}
		}
		r.b = rest
	}
	name, bits, ok := curveInfo(curveOID)
	if !ok {
		return KeyInfo{}, notKey("EC key: unknown curve")
	}
	info := KeyInfo{Type: "ecdsa", Bits: bits}
	var curve ecdh.Curve
	switch name {
	case "nistp256":
		curve = ecdh.P256()
	case "nistp384":
		curve = ecdh.P384()
	case "nistp521":
		curve = ecdh.P521()
	default:
		return info, nil // valid structure, curve SSH cannot express
	}
	size := (bits + 7) / 8
	if len(scalar) > size {
		return KeyInfo{}, notKey("EC key: scalar longer than the curve")
	}
	padded := make([]byte, size)
	copy(padded[size-len(scalar):], scalar)
	priv, err := curve.NewPrivateKey(padded)
	if err != nil {
		return KeyInfo{}, notKey("EC key: scalar out of range")
	}
	info.KeyFingerprint = ecdsaSSHFingerprint(name, priv.PublicKey().Bytes())
	return info, nil
}

// parseOpenSSLDSA parses OpenSSL's DSA private key SEQUENCE {0, p, q, g, y, x}.
func parseOpenSSLDSA(content []byte) (KeyInfo, error) {
	r := derReader{b: content}
	if r.smallInt() != 0 {
		return KeyInfo{}, notKey("DSA key: bad version")
	}
	p, q, g, y, x := r.posInt(), r.posInt(), r.posInt(), r.posInt(), r.posInt()
	if r.bad || len(r.b) != 0 {
		return KeyInfo{}, notKey("DSA key: bad DER")
	}
	return dsaInfo(p, q, g, y, x)
}

// dsaInfo checks a DSA key (y == g^x mod p) and fingerprints it; y may be nil
// (PKCS#8 stores only x) and is then derived.
func dsaInfo(p, q, g, y, x *big.Int) (KeyInfo, error) {
	if p.BitLen() < 512 || p.BitLen() > 4096 || q.BitLen() < 128 || q.BitLen() > 512 ||
		g.Cmp(p) >= 0 || x.Cmp(q) >= 0 || x.Sign() <= 0 {
		return KeyInfo{}, notKey("DSA key: parameters out of range")
	}
	gx := new(big.Int).Exp(g, x, p)
	if y != nil && gx.Cmp(y) != 0 {
		return KeyInfo{}, notKey("DSA key: public value does not match")
	}
	return KeyInfo{Type: "dsa", Bits: p.BitLen(), KeyFingerprint: dsaSSHFingerprint(p, q, g, gx)}, nil
}

// parsePKCS8 parses an unencrypted PKCS#8 PrivateKeyInfo.
func parsePKCS8(der []byte) (KeyInfo, error) {
	seq, ok := outerSequence(der)
	if !ok {
		return KeyInfo{}, notKey("PKCS#8: bad DER")
	}
	return parsePKCS8Content(seq)
}

func parsePKCS8Content(seq []byte) (KeyInfo, error) {
	r := derReader{b: seq}
	if v := r.smallInt(); v != 0 && v != 1 {
		return KeyInfo{}, notKey("PKCS#8: bad version")
	}
	alg := derReader{b: r.next(tagSequence)}
	key := r.next(tagOctetString)
	if r.bad {
		return KeyInfo{}, notKey("PKCS#8: bad DER")
	}
	oid := alg.next(tagOID)
	if alg.bad {
		return KeyInfo{}, notKey("PKCS#8: bad algorithm identifier")
	}
	switch {
	case bytes.Equal(oid, oidRSA), bytes.Equal(oid, oidRSAPSS):
		inner, ok := outerSequence(key)
		if !ok {
			return KeyInfo{}, notKey("PKCS#8 RSA: bad DER")
		}
		k, ok := parsePKCS1(inner)
		if !ok {
			return KeyInfo{}, notKey("PKCS#8 RSA: not a consistent PKCS#1 key")
		}
		return k.info(), nil
	case bytes.Equal(oid, oidEC):
		curve := alg.next(tagOID)
		inner, ok := outerSequence(key)
		if !ok {
			return KeyInfo{}, notKey("PKCS#8 EC: bad DER")
		}
		return parseSEC1(inner, curve)
	case bytes.Equal(oid, oidDSA):
		params := derReader{b: alg.next(tagSequence)}
		p, q, g := params.posInt(), params.posInt(), params.posInt()
		t, xb, rest, ok := derTLV(key)
		if alg.bad || params.bad || !ok || t != tagInteger || len(rest) != 0 || len(xb) == 0 || xb[0]&0x80 != 0 {
			return KeyInfo{}, notKey("PKCS#8 DSA: bad DER")
		}
		return dsaInfo(p, q, g, nil, new(big.Int).SetBytes(xb))
	case bytes.Equal(oid, oidEd25519):
		t, seed, rest, ok := derTLV(key)
		if !ok || t != tagOctetString || len(rest) != 0 || len(seed) != ed25519.SeedSize {
			return KeyInfo{}, notKey("PKCS#8 Ed25519: bad seed")
		}
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		return KeyInfo{Type: "ed25519", Bits: 256, KeyFingerprint: ed25519SSHFingerprint(pub)}, nil
	case bytes.Equal(oid, oidX25519):
		return rawCurveKey(key, "x25519", 32, 256)
	case bytes.Equal(oid, oidX448):
		return rawCurveKey(key, "x448", 56, 448)
	case bytes.Equal(oid, oidEd448):
		return rawCurveKey(key, "ed448", 57, 456)
	}
	return KeyInfo{}, notKey("PKCS#8: unsupported algorithm")
}

// parseEncryptedPKCS8 checks the EncryptedPrivateKeyInfo structure. The key
// algorithm is inside the ciphertext, so Type is "unknown".
func parseEncryptedPKCS8(der []byte) (KeyInfo, error) {
	seq, ok := outerSequence(der)
	if !ok {
		return KeyInfo{}, notKey("encrypted PKCS#8: bad DER")
	}
	r := derReader{b: seq}
	alg := derReader{b: r.next(tagSequence)}
	data := r.next(tagOctetString)
	oid := alg.next(tagOID)
	if r.bad || alg.bad || len(r.b) != 0 {
		return KeyInfo{}, notKey("encrypted PKCS#8: bad DER")
	}
	if !bytes.Equal(oid, oidPBES2) && !bytes.HasPrefix(oid, oidPKCS12PBE) && !bytes.HasPrefix(oid, oidPKCS5PBES1) {
		return KeyInfo{}, notKey("encrypted PKCS#8: unknown encryption scheme")
	}
	if len(data) < 16 || len(data)%8 != 0 {
		return KeyInfo{}, notKey("encrypted PKCS#8: ciphertext of impossible length")
	}
	return KeyInfo{Type: "unknown", Encrypted: true}, nil
}

// rawCurveKey checks a PKCS#8 CurvePrivateKey (an OCTET STRING of size
// bytes) for curves SSH fingerprints do not cover.
func rawCurveKey(key []byte, typ string, size, bits int) (KeyInfo, error) {
	t, k, rest, ok := derTLV(key)
	if !ok || t != tagOctetString || len(rest) != 0 || len(k) != size {
		return KeyInfo{}, notKey("PKCS#8 %s: bad key", typ)
	}
	return KeyInfo{Type: typ, Bits: bits}, nil
}

// trimLineIndent removes leading spaces and tabs from every line.
func trimLineIndent(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n ")) && !bytes.Contains(b, []byte("\n\t")) {
		return b
	}
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimLeft(l, " \t")
	}
	return bytes.Join(lines, []byte("\n"))
}
