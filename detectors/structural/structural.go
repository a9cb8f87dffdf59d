// Package structural holds the structural validators of imgaudit's detectors:
// parsers that decide whether bytes found around a keyword hit really are a
// private key, a token with a valid checksum, a keytab, an AES key schedule or
// a DER-encoded RSA key. They do no I/O, bound every allocation, never panic
// on hostile input, and never put secret material into an error string.
package structural

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
)

// KeyInfo describes a private key that parsed.
type KeyInfo struct {
	// Type is "rsa", "ecdsa", "dsa", "ed25519", "ecdsa-sk", "ed25519-sk",
	// "x25519", "ed448", "x448", "elgamal", "ecdh", or "unknown" when the key
	// is encrypted and its algorithm cannot be learned.
	Type string
	// Bits is the key size (RSA/DSA modulus bits, curve bits); 0 if unknown.
	Bits int
	// Encrypted reports whether the private part is protected by a passphrase.
	Encrypted bool
	// KeyFingerprint is the OpenSSH "SHA256:<base64 no padding>" fingerprint
	// of the public key, as `ssh-keygen -lf` prints it; "" if not derivable.
	KeyFingerprint string
}

// ErrNotKey is wrapped by every parse error: the input is not a (complete,
// well-formed) key of the expected kind.
var ErrNotKey = errors.New("not a valid key")

// notKey builds an error that never includes input bytes.
func notKey(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotKey}, args...)...)
}

// maxArmoredLen bounds the armoured text a parser accepts (a 16384-bit RSA
// key in PEM is about 12 KiB; JSON escaping and PGP subkeys add some).
const maxArmoredLen = 1 << 20

// SSHFingerprint returns the OpenSSH SHA256 fingerprint of an SSH wire-format
// public key blob.
func SSHFingerprint(blob []byte) string {
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// sshWire builds SSH wire-format public key blobs (RFC 4251 strings/mpints).
type sshWire struct{ b []byte }

func (w *sshWire) str(s []byte) {
	w.b = binary.BigEndian.AppendUint32(w.b, uint32(len(s)))
	w.b = append(w.b, s...)
}

func (w *sshWire) mpint(n *big.Int) {
	if n.Sign() == 0 {
		w.str(nil)
		return
	}
	b := n.Bytes()
	if b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	w.str(b)
}

// rsaSSHFingerprint is the fingerprint of an ssh-rsa public key.
func rsaSSHFingerprint(n, e *big.Int) string {
	var w sshWire
	w.str([]byte("ssh-rsa"))
	w.mpint(e)
	w.mpint(n)
	return SSHFingerprint(w.b)
}

// dsaSSHFingerprint is the fingerprint of an ssh-dss public key.
func dsaSSHFingerprint(p, q, g, y *big.Int) string {
	var w sshWire
	w.str([]byte("ssh-dss"))
	w.mpint(p)
	w.mpint(q)
	w.mpint(g)
	w.mpint(y)
	return SSHFingerprint(w.b)
}

// ed25519SSHFingerprint is the fingerprint of an ssh-ed25519 public key.
func ed25519SSHFingerprint(pub []byte) string {
	var w sshWire
	w.str([]byte("ssh-ed25519"))
	w.str(pub)
	return SSHFingerprint(w.b)
}

// ecdsaSSHFingerprint is the fingerprint of an ecdsa-sha2-<curve> public key
// given its uncompressed point; "" for curves SSH does not define.
func ecdsaSSHFingerprint(curve string, point []byte) string {
	switch curve {
	case "nistp256", "nistp384", "nistp521":
	default:
		return ""
	}
	var w sshWire
	w.str([]byte("ecdsa-sha2-" + curve))
	w.str([]byte(curve))
	w.str(point)
	return SSHFingerprint(w.b)
}

// sshReader reads SSH wire-format fields with bounds checks.
type sshReader struct {
	b   []byte
	err bool
}

func (r *sshReader) u32() uint32 {
	if len(r.b) < 4 {
		r.err = true
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sshReader) str() []byte {
	n := r.u32()
	if r.err || uint64(n) > uint64(len(r.b)) {
		r.err = true
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// sshPublicKeyInfo learns type and bits from an SSH public key blob and
// fingerprints it.
func sshPublicKeyInfo(blob []byte) (KeyInfo, error) {
	r := sshReader{b: blob}
	kt := string(r.str())
	if r.err {
		return KeyInfo{}, notKey("truncated ssh public key")
	}
	info := KeyInfo{KeyFingerprint: SSHFingerprint(blob)}
	switch kt {
	case "ssh-rsa":
		e := r.str()
		n := r.str()
		if r.err || len(e) == 0 || len(n) == 0 {
			return KeyInfo{}, notKey("truncated ssh-rsa public key")
		}
		info.Type, info.Bits = "rsa", new(big.Int).SetBytes(n).BitLen()
	case "ssh-dss":
		p := r.str()
		for range 3 {
			r.str()
		}
		if r.err || len(p) == 0 {
			return KeyInfo{}, notKey("truncated ssh-dss public key")
		}
		info.Type, info.Bits = "dsa", new(big.Int).SetBytes(p).BitLen()
	case "ssh-ed25519":
		if pub := r.str(); r.err || len(pub) != 32 {
			return KeyInfo{}, notKey("bad ssh-ed25519 public key")
		}
		info.Type, info.Bits = "ed25519", 256
	case "sk-ssh-ed25519@openssh.com":
		if pub := r.str(); r.err || len(pub) != 32 {
			return KeyInfo{}, notKey("bad sk-ssh-ed25519 public key")
		}
		info.Type, info.Bits = "ed25519-sk", 256
	case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
		"sk-ecdsa-sha2-nistp256@openssh.com":
		curve := string(r.str())
		if pt := r.str(); r.err || len(pt) == 0 {
			return KeyInfo{}, notKey("truncated ecdsa public key")
		}
		info.Type = "ecdsa"
		if kt[:3] == "sk-" {
			info.Type = "ecdsa-sk"
		}
		switch curve {
		case "nistp256":
			info.Bits = 256
		case "nistp384":
			info.Bits = 384
		case "nistp521":
			info.Bits = 521
		default:
			return KeyInfo{}, notKey("unknown ecdsa curve")
		}
	default:
		return KeyInfo{}, notKey("unknown ssh key type")
	}
	return info, nil
}
