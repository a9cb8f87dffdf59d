package structural

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
)

// maxPPKLines bounds Public-Lines/Private-Lines (64 base64 chars each; a
// 16384-bit RSA key needs about 70).
const maxPPKLines = 1024

// ParsePPK parses a PuTTY private key file (PuTTY-User-Key-File-2 or -3):
// the key type from the header, Encryption, and the public blob, which is in
// the clear and gives the fingerprint. For an unencrypted key the Private-MAC
// is verified too (PuTTY's MAC key for no passphrase is known), which rejects
// truncated or edited files.
func ParsePPK(text []byte) (KeyInfo, error) {
	if len(text) > maxArmoredLen {
		return KeyInfo{}, notKey("PPK longer than %d bytes", maxArmoredLen)
	}
	if i := bytes.Index(text, []byte("PuTTY-User-Key-File-")); i >= 0 {
		text = text[i:]
	} else {
		return KeyInfo{}, notKey("no PPK header")
	}
	p := ppkLines{rest: text}
	key, val := p.field()
	var version int
	switch key {
	case "PuTTY-User-Key-File-2":
		version = 2
	case "PuTTY-User-Key-File-3":
		version = 3
	default:
		return KeyInfo{}, notKey("unsupported PPK version")
	}
	alg := val
	k, enc := p.field()
	if k != "Encryption" || (enc != "none" && enc != "aes256-cbc") {
		return KeyInfo{}, notKey("PPK: bad Encryption line")
	}
	k, comment := p.field()
	if k != "Comment" {
		return KeyInfo{}, notKey("PPK: missing Comment line")
	}
	pub, ok := p.blob("Public-Lines")
	if !ok {
		return KeyInfo{}, notKey("PPK: bad public lines")
	}
	info, err := sshPublicKeyInfo(pub)
	if err != nil {
		return KeyInfo{}, err
	}
	if blobType := (&sshReader{b: pub}).str(); string(blobType) != alg {
		return KeyInfo{}, notKey("PPK: header and public key types differ")
	}
	info.Encrypted = enc != "none"
	if version == 3 && info.Encrypted {
		for _, want := range []string{"Key-Derivation", "Argon2-Memory", "Argon2-Passes", "Argon2-Parallelism", "Argon2-Salt"} {
			if k, _ := p.field(); k != want {
				return KeyInfo{}, notKey("PPK: missing %s line", want)
			}
		}
	}
	priv, ok := p.blob("Private-Lines")
	if !ok || len(priv) == 0 {
		return KeyInfo{}, notKey("PPK: bad private lines")
	}
	k, macHex := p.field()
	if k != "Private-MAC" {
		return KeyInfo{}, notKey("PPK: missing Private-MAC")
	}
	mac, err := hex.DecodeString(macHex)
	if err != nil {
		return KeyInfo{}, notKey("PPK: Private-MAC is not hex")
	}
	if info.Encrypted {
		if len(priv)%16 != 0 {
			return KeyInfo{}, notKey("PPK: ciphertext of impossible length")
		}
		return info, nil
	}
	var w sshWire
	w.str([]byte(alg))
	w.str([]byte(enc))
	w.str([]byte(comment))
	w.str(pub)
	w.str(priv)
	var h []byte
	if version == 2 {
		mk := sha1.Sum([]byte("putty-private-key-file-mac-key"))
		m := hmac.New(sha1.New, mk[:])
		m.Write(w.b)
		h = m.Sum(nil)
	} else {
		m := hmac.New(sha256.New, nil)
		m.Write(w.b)
		h = m.Sum(nil)
	}
	if !hmac.Equal(h, mac) {
		return KeyInfo{}, notKey("PPK: Private-MAC does not match")
	}
	return info, nil
}

// ppkLines reads "Key: value" lines of a PPK file.
type ppkLines struct{ rest []byte }

func (p *ppkLines) line() (string, bool) {
	if len(p.rest) == 0 {
		return "", false
	}
	l := p.rest
	if i := bytes.IndexByte(l, '\n'); i >= 0 {
		l, p.rest = l[:i], p.rest[i+1:]
	} else {
		p.rest = nil
	}
	if len(l) > 4096 {
		return "", false
	}
	return strings.TrimRight(string(l), "\r"), true
}

func (p *ppkLines) field() (key, val string) {
	l, ok := p.line()
	if !ok {
		return "", ""
	}
	key, val, _ = strings.Cut(l, ": ")
	return key, val
}

// blob reads "<name>: N" followed by N lines of base64.
func (p *ppkLines) blob(name string) ([]byte, bool) {
	k, v := p.field()
	n, err := strconv.Atoi(v)
	if k != name || err != nil || n < 1 || n > maxPPKLines {
		return nil, false
	}
	var b64 strings.Builder
	for range n {
		l, ok := p.line()
		if !ok {
			return nil, false
		}
		b64.WriteString(l)
	}
	out, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		return nil, false
	}
	return out, true
}
