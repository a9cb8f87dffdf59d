package structural

import (
	"bytes"
	"testing"
)

// The seed corpora live in testdata/fuzz/FuzzXxx (written by
// TestWriteSeeds with IMGAUDIT_WRITE_SEEDS=1 (make seeds), from keys the real
// tools generate). The targets check that nothing panics and that results
// stay within their input.

func FuzzParsePrivateKeyPEM(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParsePrivateKeyPEM(data)
		if err == nil && info.Type == "" {
			t.Fatal("accepted a key without a type")
		}
	})
}

func FuzzParsePPK(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParsePPK(data)
		if err == nil && (info.Type == "" || info.KeyFingerprint == "") {
			t.Fatalf("accepted an incomplete key: %+v", info)
		}
	})
}

func FuzzParsePGPPrivate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParsePGPPrivate(data)
		if err == nil && info.Type == "" {
			t.Fatal("accepted a key without a type")
		}
	})
}

func FuzzParseKeytab(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		n, principals, err := ParseKeytab(data)
		if err != nil {
			return
		}
		if n < 2 || n > len(data) || len(principals) == 0 {
			t.Fatalf("n=%d of %d, %d principals", n, len(data), len(principals))
		}
	})
}

func FuzzJWT(f *testing.F) {
	f.Fuzz(func(t *testing.T, tok string) {
		if JWTValid(tok) && bytes.Count([]byte(tok), []byte(".")) != 2 {
			t.Fatal("accepted a token without three parts")
		}
		GitHubClassicTokenValid(tok)
	})
}

func FuzzFindAES(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, maxErr uint8) {
		m := int(maxErr % 24)
		last := -1
		FindAESKeySchedules(data, m, func(off int, key []byte) {
			size := 4 * aesScheduleWords(len(key)/4)
			if len(key) != 16 && len(key) != 24 && len(key) != 32 || off <= last || off < 0 || off+size > len(data) {
				t.Fatalf("bad hit off=%d keylen=%d (last %d, len %d)", off, len(key), last, len(data))
			}
			if !bytes.Equal(key, data[off:off+len(key)]) {
				t.Fatal("emitted key is not the bytes at off")
			}
			last = off
		})
	})
}

func FuzzFindRSADER(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		end := 0
		FindRSAPrivateDER(data, func(off, length int, info KeyInfo) {
			if off < end || length <= 0 || off+length > len(data) || info.Type != "rsa" || info.KeyFingerprint == "" {
				t.Fatalf("bad hit off=%d length=%d %+v", off, length, info)
			}
			if DERSecret(data, off, length) == nil {
				t.Fatal("DERSecret rejects an emitted range")
			}
			end = off + length
		})
	})
}

func FuzzUnescape(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		out := UnescapeArmored(data)
		if len(out) > len(data) {
			t.Fatalf("output longer than input: %d > %d", len(out), len(data))
		}
		if bytes.IndexByte(data, '\\') < 0 && !bytes.Equal(out, data) {
			t.Fatal("changed input without escapes")
		}
	})
}
