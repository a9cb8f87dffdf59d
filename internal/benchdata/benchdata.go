// Package benchdata writes the inputs of the throughput benchmarks (make
// bench, scripts/scaling.sh) without a hypervisor: raw disk images, and
// guest memory as an ELF core (dump-guest-memory's format), a kdump file
// with zlib pages (dump-guest-memory -z) and a QEMU migration stream
// (plain or with the compress capability's zlib pages).
//
// Their guest bytes come from Source: a fixed mix of this machine's
// executables and libraries, text and random bytes, 4 KiB pages at a time,
// like the RAM of a running system. The formats' readers are tested
// against files QEMU writes; these writers follow the same layouts (see
// /work/shared/reference/formats.md and the readers' package docs) so that
// a machine without QEMU can still measure throughput.
package benchdata

import (
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// PageSize is the guest page size of every memory format written here.
const PageSize = 4096

// runPages is the length of one run of pages of the same kind.
const runPages = 16

// Source makes guest bytes: runs of 64 KiB that are, in turn, bytes of
// host files (4 in 10), text lines (3 in 10) or random bytes (3 in 10),
// with one page in 16 left zero. The same seed and host files give the
// same bytes.
type Source struct {
	rng   *rand.Rand
	files []string
	next  int
	cur   *os.File
	page  int64
}

// NewSource returns a Source seeded with seed that reads the regular
// files under dirs (up to about 2 GiB of them are listed) for its host
// runs; with no readable file it makes text instead.
func NewSource(seed uint64, dirs ...string) *Source {
	s := &Source{rng: rand.New(rand.NewPCG(seed, 0x22))}
	var listed int64
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.Type().IsRegular() {
				return nil
			}
			if fi, err := e.Info(); err == nil && fi.Size() >= PageSize {
				s.files = append(s.files, p)
				listed += fi.Size()
			}
			if listed > 2<<30 {
				return filepath.SkipAll
			}
			return nil
		})
	}
	return s
}

// Close closes the host file being read.
func (s *Source) Close() {
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
}

// Fill fills p, a whole number of pages, with the next guest bytes.
func (s *Source) Fill(p []byte) {
	for len(p) > 0 {
		run := min(len(p), runPages*PageSize)
		s.fillRun(p[:run])
		p = p[run:]
	}
}

func (s *Source) fillRun(p []byte) {
	switch k := s.rng.IntN(10); {
	case k < 4 && s.host(p):
	case k < 7:
		s.text(p)
	default:
		s.random(p)
	}
	// Real memory has free pages; most dumps leave them out or share one.
	for off := 0; off+PageSize <= len(p); off += PageSize {
		if s.page++; s.page%16 == 7 {
			clear(p[off : off+PageSize])
		}
	}
}

// host fills p from the host files in turn; false when none can be read.
func (s *Source) host(p []byte) bool {
	for tries := 0; len(s.files) > 0 && tries < 64; tries++ {
		if s.cur == nil {
			f, err := os.Open(s.files[s.next%len(s.files)])
			s.next++
			if err != nil {
				continue
			}
			s.cur = f
		}
		n, _ := io.ReadFull(s.cur, p)
		if n == len(p) {
			return true
		}
		s.Close()
		if n > 0 {
			s.text(p[n:])
			return true
		}
	}
	return false
}

var words = []string{"server", "listen", "user", "timeout", "cache", "session", "GET", "POST", "/api/v1/items",
	"200", "404", "error", "warning", "info", "connection", "closed", "from", "port", "database", "query",
	"select", "where", "id", "name", "value", "true", "false", "null", "config", "path", "/var/log", "kernel",
	"systemd", "started", "stopped", "job", "worker", "thread", "pid", "uid", "memory", "bytes"}

// text fills p with log-like and configuration-like lines.
func (s *Source) text(p []byte) {
	i := 0
	for i < len(p) {
		line := s.rng.IntN(12) + 3
		for w := 0; w < line && i < len(p); w++ {
			word := words[s.rng.IntN(len(words))]
			if s.rng.IntN(5) == 0 {
				word = word + "=" + words[s.rng.IntN(len(words))]
			}
			i += copy(p[i:], word)
			if i < len(p) {
				p[i] = ' '
				i++
			}
		}
		if i < len(p) {
			p[i-1] = '\n'
		}
	}
}

func (s *Source) random(p []byte) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := s.rng.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
}

// Dense makes guest bytes that are all secrets: 98-byte lines, each an AWS
// access key ID and a token of one of twelve other rules in turn (GitLab,
// Stripe, Slack, npm, Docker Hub, Shopify, New Relic, Stripe webhook,
// RubyGems, DigitalOcean...), all distinct: a 32 MiB guest holds 342,000
// key IDs and 28,500 tokens of each other rule, past the scanner's
// findings limits of a rule (10,000) and of a scan (100,000). It is the
// input of the bound on a scan's memory (cmd/imgaudit's dense-dump test).
type Dense struct {
	rng  *rand.Rand
	n    int64
	line []byte
	pos  int // next byte of line to copy; len(line) when a new one is due
}

// DenseLine is the length of each of Dense's lines.
const DenseLine = 98

// NewDense returns a Dense seeded with seed.
func NewDense(seed uint64) *Dense {
	return &Dense{rng: rand.New(rand.NewPCG(seed, 0x16)), line: make([]byte, DenseLine), pos: DenseLine}
}

const (
	base32Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alnum       = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	upperDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digits      = "0123456789"
	hexDigits   = "0123456789abcdef"
)

// denseToken is one kind of Dense's tokens: a prefix, then runs of random
// characters of a set, each run after a separator. None holds a run of
// exactly 40 base64 characters, which would pair with the line's key ID
// (aws-access-key-pair) and hide it.
type denseToken struct {
	prefix string
	parts  []struct {
		sep string
		set string
		n   int
	}
}

func tok(prefix string, parts ...any) denseToken {
	t := denseToken{prefix: prefix}
	for i := 0; i < len(parts); i += 3 {
		t.parts = append(t.parts, struct {
			sep string
			set string
			n   int
		}{parts[i].(string), parts[i+1].(string), parts[i+2].(int)})
	}
	return t
}

var denseTokens = []denseToken{
	tok("glpat-", "", alnum, 20),
	tok("sk_live_", "", alnum, 41),
	tok("xoxb-", "", digits, 10, "-", digits, 10, "-", alnum, 24),
	tok("npm_", "", alnum, 36),
	tok("dckr_pat_", "", alnum, 27),
	tok("shpat_", "", hexDigits, 32),
	tok("NRAK-", "", upperDigits, 27),
	tok("whsec_", "", alnum, 32),
	tok("rubygems_", "", hexDigits, 48),
	tok("dop_v1_", "", hexDigits, 64),
	tok("glft-", "", alnum, 20),
	tok("CFPAT-", "", alnum, 43),
}

// Fill fills p with the next bytes of the lines.
func (d *Dense) Fill(p []byte) {
	for len(p) > 0 {
		if d.pos == len(d.line) {
			d.next()
		}
		n := copy(p, d.line[d.pos:])
		d.pos += n
		p = p[n:]
	}
}

// next makes line n: "AKIA<16> <token>", padded with spaces, and a line
// break.
func (d *Dense) next() {
	l := append(d.line[:0], "AKIA"...)
	// 16 base-32 characters of a bijective mix of n: distinct, and
	// looking random (a key ID of mostly one letter looks made up).
	v := uint64(d.n) + 0x9e3779b97f4a7c15
	v = (v ^ v>>30) * 0xbf58476d1ce4e5b9
	v = (v ^ v>>27) * 0x94d049bb133111eb
	v ^= v >> 31
	var id [16]byte
	for k := range id {
		id[k] = base32Upper[v&31]
		v >>= 5 // 64 bits: the last three characters are A
	}
	l = append(l, id[:]...)
	t := denseTokens[d.n%int64(len(denseTokens))]
	l = append(append(l, ' '), t.prefix...)
	for _, p := range t.parts {
		l = append(l, p.sep...)
		for range p.n {
			l = append(l, p.set[d.rng.IntN(len(p.set))])
		}
	}
	for len(l) < DenseLine-1 {
		l = append(l, ' ')
	}
	d.line = append(l, '\n')
	d.pos = 0
	d.n++
}
