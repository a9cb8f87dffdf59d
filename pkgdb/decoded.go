package pkgdb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"

	"github.com/imgaudit/imgaudit/decode"
)

// A decoded digest is a digest of what a compressed file decompresses
// to, for records that vouch for a file's content rather than for its
// bytes: apt's lists, which apt compresses again itself where
// Acquire::GzipIndexes is set, while the Release file lists the
// uncompressed index's SHA-256. Its algorithm is the plain one's name
// with this suffix: "sha256-decoded".
const decodedSuffix = "-decoded"

// MaxDecodedDigestBytes bounds what DecodedHash decompresses: apt's
// largest list, Debian 13's main Packages index, is 57 MB; pkgdb reads
// at most 1 GiB of one (defaultAptLimits).
const MaxDecodedDigestBytes = 1 << 30

// DecodedDigestCap is what DecodedHash may decode from a file of size
// compressed bytes (-1: unknown): the decode pass's expansion cap (100
// bytes per compressed byte, past the first MiB; apt's lz4 lists expand
// 2.7 times), within MaxDecodedDigestBytes. A hostile guest that names
// bombs in its Release file so costs what decoding them would, not a
// GiB each.
func DecodedDigestCap(size int64) int64 {
	lim := decode.DefaultLimits()
	if size < 0 || size > (MaxDecodedDigestBytes-lim.RatioFloor)/lim.MaxRatio {
		return MaxDecodedDigestBytes
	}
	return size*lim.MaxRatio + lim.RatioFloor
}

// DecodedBudget bounds what DecodedHash decodes over many files (a
// scan's, a container layer's): each file's cap is proportional to its
// size, but a guest that names thousands of small bombs in its Release
// files would otherwise cost a MiB each. Past it, DecodedHash fails, so
// those files are vouched for by nothing and keep their findings'
// severity. Safe for concurrent use; a nil budget is unbounded.
type DecodedBudget struct{ left atomic.Int64 }

// DefaultDecodedBudget is the decode pass's own budget per target.
const DefaultDecodedBudget = 4 << 30

// NewDecodedBudget returns a budget of n decoded bytes.
func NewDecodedBudget(n int64) *DecodedBudget {
	b := &DecodedBudget{}
	b.left.Store(n)
	return b
}

// take charges n bytes, and reports whether the budget covered them.
func (b *DecodedBudget) take(n int64) bool {
	return b == nil || b.left.Add(-n) >= 0
}

// DecodedDigest names the decoded digest of plain algorithm algo.
func DecodedDigest(algo string) string { return algo + decodedSuffix }

// IsDecodedDigest reports whether algo names a decoded digest, and
// returns the plain algorithm it applies after decoding.
func IsDecodedDigest(algo string) (string, bool) {
	return strings.CutSuffix(algo, decodedSuffix)
}

// DecodedHash streams r, a compressed stream of any codec the decoders
// read whole (gzip, xz, zstd, bzip2, lz4; which one is learnt from its
// magic number, not from a name), through the decoders, under their
// memory cap, and returns the digest of what it decodes to, algo being a
// decoded digest's name. It fails on anything else, on a stream that does
// not decode to its end, past maxBytes decoded (a bomb), and once budget
// is spent. Errors name the decoded offset. gate, when set, bounds its
// decoder's memory together with the other walks that share it (a
// scan hashes on every core).
func DecodedHash(ctx context.Context, r io.Reader, algo string, maxBytes int64, budget *DecodedBudget, gate *decode.MemoryGate) ([]byte, error) {
	plain, ok := IsDecodedDigest(algo)
	var h hash.Hash
	switch plain {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	}
	if !ok || h == nil {
		return nil, fmt.Errorf("%s: not a decoded digest this computes", algo)
	}
	d, codec, err := openStream(ctx, r, gate)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	lr := io.LimitReader(d, maxBytes+1)
	buf := make([]byte, 256<<10)
	var n int64
	for {
		k, err := lr.Read(buf)
		if k > 0 {
			if !budget.take(int64(k)) {
				return nil, fmt.Errorf("%s: decoded offset %d: over the budget of decoded digests", codec, n)
			}
			h.Write(buf[:k])
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: decoded offset %d: %w", codec, n, err)
		}
	}
	if n > maxBytes {
		return nil, fmt.Errorf("%s: decodes to over %d bytes", codec, maxBytes)
	}
	return h.Sum(nil), nil
}

// openStream returns what the compressed stream r holds decodes to,
// through the decode package's stream readers: the codec is learnt from
// the magic number, never from a name, and an xz dictionary or zstd
// window over their memory cap is an error before it is allocated.
func openStream(ctx context.Context, r io.Reader, gate *decode.MemoryGate) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(decode.SniffLen)
	codec := decode.Sniff(head)
	if !decode.IsStream(codec) {
		return nil, "", errors.New("offset 0: not a compressed stream")
	}
	d, err := gate.StreamReader(ctx, codec, br) // a nil gate bounds nothing
	if err != nil {
		return nil, codec, fmt.Errorf("%s at offset 0: %w", codec, err)
	}
	return d, codec, nil
}
