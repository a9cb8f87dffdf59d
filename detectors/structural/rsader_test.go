package structural

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

type derHit struct {
	off, length int
	info        KeyInfo
}

func findDER(buf []byte) []derHit {
	var hits []derHit
	FindRSAPrivateDER(buf, func(off, length int, info KeyInfo) { hits = append(hits, derHit{off, length, info}) })
	return hits
}

// TestFindRSAPrivateDER plants x509-marshalled keys in random bytes; the
// fingerprint oracle is ssh-keygen on the PEM form of the same key.
func TestFindRSAPrivateDER(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen")
	dir := t.TempDir()
	type key struct {
		pkcs1, pkcs8 []byte
		want         KeyInfo
	}
	var keys []key
	for _, bits := range []int{1024, 2048, 4096} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		p1 := x509.MarshalPKCS1PrivateKey(k)
		p8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, dir, "k.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: p1}))
		o := sshKeygenFingerprint(t, publicFromPrivate(t, path))
		keys = append(keys, key{p1, p8, KeyInfo{Type: "rsa", Bits: o.bits, KeyFingerprint: o.fp}})
	}
	r := mrand.New(mrand.NewPCG(13, 14))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)

	cases := []struct {
		name  string
		der   func() []byte
		off   int
		found bool
	}{
		{"pkcs1-1024-odd", func() []byte { return keys[0].pkcs1 }, 4097, true},
		{"pkcs1-2048-start", func() []byte { return keys[1].pkcs1 }, 0, true},
		{"pkcs1-4096", func() []byte { return keys[2].pkcs1 }, 12345, true},
		{"pkcs8-1024", func() []byte { return keys[0].pkcs8 }, 333, true},
		{"pkcs8-2048-page-boundary", func() []byte { return keys[1].pkcs8 }, 4096 - 500, true},
		{"pkcs1-at-end", func() []byte { return keys[0].pkcs1 }, -1, true},
		{"truncated", func() []byte { return keys[1].pkcs1[:len(keys[1].pkcs1)-10] }, -1, false},
		{"corrupted-p", func() []byte {
			b := bytes.Clone(keys[1].pkcs1)
			k, _ := x509.ParsePKCS1PrivateKey(keys[1].pkcs1)
			p := k.Primes[0].Bytes()
			i := bytes.Index(b, p)
			b[i+len(p)/2] ^= 0x01
			return b
		}, 100, false},
		{"corrupted-n", func() []byte {
			b := bytes.Clone(keys[0].pkcs1)
			b[20] ^= 0x80
			return b
		}, 100, false},
		{"ecdsa-pkcs8", func() []byte { return ecDER }, 100, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := randBytes(r, 20000)
			der := c.der()
			off := c.off
			if off < 0 {
				off = len(buf) - len(der)
			}
			copy(buf[off:], der)
			hits := findDER(buf)
			if !c.found {
				if len(hits) != 0 {
					t.Fatalf("found %v", hits)
				}
				return
			}
			want := []derHit{{off, len(der), keys[[]int{0, 1, 2, 0, 1, 0}[i]].want}}
			if !slices.Equal(hits, want) {
				t.Fatalf("got %+v, want %+v", hits, want)
			}
			if !bytes.Equal(DERSecret(buf, off, len(der)), der) {
				t.Fatal("DERSecret is not the planted DER")
			}
		})
	}
	t.Run("two-keys-and-pem-parse-agree", func(t *testing.T) {
		buf := randBytes(r, 30000)
		copy(buf[10:], keys[0].pkcs8)
		copy(buf[20000:], keys[1].pkcs1)
		hits := findDER(buf)
		if len(hits) != 2 || hits[0].off != 10 || hits[1].off != 20000 {
			t.Fatalf("got %+v", hits)
		}
		info, err := ParsePrivateKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keys[0].pkcs8}))
		if err != nil || info != hits[0].info {
			t.Fatalf("PEM parse %+v %v differs from DER scan %+v", info, err, hits[0].info)
		}
	})
	t.Run("random-no-hits", func(t *testing.T) {
		buf := randBytes(r, 1<<20)
		// Sprinkle plausible headers: 30 82 LL LL 02 01 00 02.
		for i := 0; i+8 < len(buf); i += 997 {
			copy(buf[i:], []byte{0x30, 0x82, 0x04, 0xa0, 0x02, 0x01, 0x00, 0x02})
		}
		if hits := findDER(buf); len(hits) != 0 {
			t.Fatalf("false positives %+v", hits)
		}
	})
}

func TestDERSecretBounds(t *testing.T) {
	buf := []byte{1, 2, 3, 4}
	cases := []struct {
		off, length int
		want        []byte
	}{
		{0, 4, buf}, {1, 2, buf[1:3]}, {-1, 2, nil}, {3, 2, nil}, {0, 0, nil}, {5, 1, nil}, {2, -1, nil},
	}
	for _, c := range cases {
		if got := DERSecret(buf, c.off, c.length); !bytes.Equal(got, c.want) || (c.want == nil) != (got == nil) {
			t.Errorf("DERSecret(%d,%d) = %v, want %v", c.off, c.length, got, c.want)
		}
	}
}
