package rollback

import (
	"bytes"
	"strings"

	"github.com/imgaudit/imgaudit/detectors/structural"
)

// maxKeyBlocks bounds the PEM blocks taken from one key file.
const maxKeyBlocks = 64

// privateKeyBlock is one armoured private key found in a file.
type privateKeyBlock struct {
	Label string // "OPENSSH PRIVATE KEY", "RSA PRIVATE KEY", ...
	Block []byte // BEGIN line to END line, as the detectors fingerprint it
	Info  structural.KeyInfo
	OK    bool // parsed as a key
}

// privateKeyBlocks finds the armoured private keys in b: blocks from
// "-----BEGIN <label>-----" to the matching END line whose label names a
// private key. The block text is exactly what the secret detectors
// fingerprint, so rollback findings share fingerprints with them.
func privateKeyBlocks(b []byte) []privateKeyBlock {
	begin := []byte("-----BEGIN ")
	var out []privateKeyBlock
	for len(out) < maxKeyBlocks {
		i := bytes.Index(b, begin)
		if i < 0 {
			break
		}
		b = b[i:]
		j := bytes.Index(b[len(begin):min(len(b), len(begin)+64)], []byte("-----"))
		if j < 0 {
			b = b[len(begin):]
			continue
		}
		label := string(b[len(begin) : len(begin)+j])
		endMarker := []byte("-----END " + label + "-----")
		k := bytes.Index(b, endMarker)
		if k < 0 {
			b = b[len(begin):]
			continue
		}
		block := b[:k+len(endMarker)]
		b = b[k+len(endMarker):]
		if !strings.Contains(label, "PRIVATE KEY") {
			continue
		}
		pk := privateKeyBlock{Label: label, Block: block}
		if info, err := structural.ParsePrivateKeyPEM(block); err == nil {
			pk.Info, pk.OK = info, true
		}
		out = append(out, pk)
	}
	return out
}
