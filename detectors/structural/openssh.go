package structural

import (
	"bytes"
	"encoding/binary"
)

const opensshMagic = "openssh-key-v1\x00"

// opensshCiphers are the ciphers OpenSSH can protect a private key with.
var opensshCiphers = map[string]bool{
	"none": true, "aes128-ctr": true, "aes192-ctr": true, "aes256-ctr": true,
	"aes128-cbc": true, "aes192-cbc": true, "aes256-cbc": true,
	"aes128-gcm@openssh.com": true, "aes256-gcm@openssh.com": true,
	"chacha20-poly1305@openssh.com": true, "3des-cbc": true,
}

// parseOpenSSHKey parses the openssh-key-v1 container. The public key is in
// the clear, so it fingerprints even encrypted keys; an unencrypted key must
// also carry matching check integers, which rejects truncated or corrupted
// blocks.
func parseOpenSSHKey(b []byte) (KeyInfo, error) {
	if !bytes.HasPrefix(b, []byte(opensshMagic)) {
		return KeyInfo{}, notKey("OpenSSH key: bad magic")
	}
	r := sshReader{b: b[len(opensshMagic):]}
	cipher := string(r.str())
	kdf := string(r.str())
	r.str() // kdf options
	nkeys := r.u32()
	if r.err {
		return KeyInfo{}, notKey("OpenSSH key: truncated header")
	}
	if !opensshCiphers[cipher] {
		return KeyInfo{}, notKey("OpenSSH key: unknown cipher")
	}
	encrypted := cipher != "none"
	if encrypted && kdf != "bcrypt" || !encrypted && kdf != "none" {
		return KeyInfo{}, notKey("OpenSSH key: cipher and kdf disagree")
	}
	if nkeys == 0 || nkeys > 16 {
		return KeyInfo{}, notKey("OpenSSH key: implausible key count %d", nkeys)
	}
	var first []byte
	for i := range nkeys {
		pub := r.str()
		if i == 0 {
			first = pub
		}
	}
	priv := r.str()
	if r.err || len(priv) == 0 {
		return KeyInfo{}, notKey("OpenSSH key: truncated")
	}
	info, err := sshPublicKeyInfo(first)
	if err != nil {
		return KeyInfo{}, err
	}
	info.Encrypted = encrypted
	if !encrypted {
		if len(priv) < 8 || len(priv)%8 != 0 ||
			binary.BigEndian.Uint32(priv) != binary.BigEndian.Uint32(priv[4:]) {
			return KeyInfo{}, notKey("OpenSSH key: private section check failed")
		}
		// The private section repeats the public key type first.
		pr := sshReader{b: priv[8:]}
		pt := pr.str()
		ft := (&sshReader{b: first}).str()
		if pr.err || !bytes.Equal(pt, ft) {
			return KeyInfo{}, notKey("OpenSSH key: private and public key types differ")
		}
	} else if len(priv)%8 != 0 {
		return KeyInfo{}, notKey("OpenSSH key: ciphertext of impossible length")
	}
	return info, nil
}
