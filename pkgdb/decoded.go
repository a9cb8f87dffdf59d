package pkgdb

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"strings"

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
// not decode to its end, and past maxBytes decoded (a bomb). Errors name
// the decoded offset.
func DecodedHash(ctx context.Context, r io.Reader, algo string, maxBytes int64) ([]byte, error) {
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
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(decode.SniffLen)
	codec := decode.Sniff(head)
	if !decode.IsStream(codec) {
		return nil, fmt.Errorf("offset 0: not a compressed stream")
	}
	d, err := decode.NewStreamReader(ctx, codec, br, 0)
	if err != nil {
		return nil, fmt.Errorf("%s at offset 0: %w", codec, err)
	}
	defer d.Close()
	n, err := io.Copy(h, io.LimitReader(d, maxBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: decoded offset %d: %w", codec, n, err)
	case n > maxBytes:
		return nil, fmt.Errorf("%s: decodes to over %d bytes", codec, maxBytes)
	}
	return h.Sum(nil), nil
}
