// Package decode unpacks compressed streams and archives found in guest
// bytes so that the detectors can read what they hold: gzip, xz, zstd,
// bzip2, lz4 and raw deflate streams; zip (and its kin: jar, whl, apk),
// tar, cpio (newc and odc, concatenated segments as in an initramfs), ar
// (.deb) and squashfs archives; nested, to a bounded depth.
//
// It does no I/O beyond the io.ReaderAt or io.Reader it is given, and it
// streams: memory is bounded by the decoders' windows (capped), one
// buffer per nesting level and a squashfs block, whatever the sizes the
// input claims. Every cap it applies (expansion ratio, decoded bytes,
// nesting depth, members, time, decoder memory) is counted in the Result
// by reason, never silent.
//
// Each decoded leaf (a member or stream that holds no further container)
// is handed to a callback as an io.Reader with its Chain: how it was
// reached from the container's first byte.
package decode

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

// Codec and archive names, as reports show them.
const (
	Gzip     = "gzip"
	Xz       = "xz"
	Zstd     = "zstd"
	Bzip2    = "bzip2"
	LZ4      = "lz4"
	Deflate  = "deflate" // raw deflate (RFC 1951), which has no magic
	Zip      = "zip"
	Tar      = "tar"
	Cpio     = "cpio"
	Ar       = "ar"
	Squashfs = "squashfs"
	// Apport is an Ubuntu crash report (/var/crash/*.crash): its binary
	// fields, each a member named by its key (CoreDump).
	Apport = "apport"
)

// Step is one level of a decoded chain. Offset is where this level starts
// in the bytes of the level above (for the first step, in the container):
// a compressed stream's first byte, or an archive member's first data byte.
// Member names the archive member ("" for a compressed stream).
type Step struct {
	Codec  string `json:"codec"`
	Member string `json:"member,omitempty"`
	Offset int64  `json:"offset"`
}

// String writes a chain step as the table shows it: "gzip", "cpio member
// etc/dropbear/dropbear_rsa_host_key".
func (s Step) String() string {
	if s.Member == "" {
		return s.Codec
	}
	return s.Codec + " member " + s.Member
}

// ChainString writes a chain as "gzip > cpio member etc/x".
func ChainString(chain []Step) string {
	parts := make([]string, len(chain))
	for i, s := range chain {
		parts[i] = s.String()
	}
	return strings.Join(parts, " > ")
}

// Leaf is one decoded piece of content: the bytes of an archive member or
// of a decoded stream that holds no container the walker knows.
type Leaf struct {
	// Chain says how the leaf was reached; the walker reuses its array,
	// so a callback that keeps it must copy it.
	Chain []Step
	// R reads the leaf's bytes. It is valid only during the callback;
	// bytes the callback leaves unread are skipped.
	R interface{ Read([]byte) (int, error) }
}

// Limits bound one walk. Zero fields take the Default's value.
type Limits struct {
	// MaxDepth bounds the chain's length: a container nested deeper is
	// not opened.
	MaxDepth int
	// MaxRatio bounds the bytes a compressed stream may decode to, per
	// byte of its input, once it has decoded RatioFloor bytes.
	MaxRatio   int64
	RatioFloor int64
	// MaxMembers bounds the members read from one archive.
	MaxMembers int
	// MaxTime bounds one walk.
	MaxTime time.Duration
	// MaxDecoderMemory bounds the memory the decoders of one walk may
	// hold at once (xz dictionaries, zstd windows, spooled squashfs).
	MaxDecoderMemory int64
	// MaxSpool bounds a squashfs image found inside a stream, which is
	// read into memory (it needs random access).
	MaxSpool int64
}

// DefaultLimits returns the caps a scan applies: xz -9 uses a 64 MiB
// dictionary and zstd --long=27 a 128 MiB window, the largest that
// ordinary tools write. A function, not a variable: no caller can change
// another's defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:         8,
		MaxRatio:         100,
		RatioFloor:       1 << 20,
		MaxMembers:       200000,
		MaxTime:          60 * time.Second,
		MaxDecoderMemory: 160 << 20,
		MaxSpool:         64 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxRatio <= 0 {
		l.MaxRatio = d.MaxRatio
	}
	if l.RatioFloor <= 0 {
		l.RatioFloor = d.RatioFloor
	}
	if l.MaxMembers <= 0 {
		l.MaxMembers = d.MaxMembers
	}
	if l.MaxTime <= 0 {
		l.MaxTime = d.MaxTime
	}
	if l.MaxDecoderMemory <= 0 {
		l.MaxDecoderMemory = d.MaxDecoderMemory
	}
	if l.MaxSpool <= 0 {
		l.MaxSpool = d.MaxSpool
	}
	return l
}

// Result counts what one walk decoded and what it left out.
type Result struct {
	// Leaves handed to the callback and the bytes read from them.
	Leaves  int64
	Decoded int64
	// StoredSkipped counts the members Options.SkipStoredLeaves left out.
	StoredSkipped int64
	// PackagedMembers counts the members Options.Packaged left out.
	PackagedMembers int64
	// Consumed is how many bytes of the container the walk read.
	Consumed int64
	// Skipped counts, by reason, the members and streams the walk did not
	// decode in full (a cap, an encrypted member, a corrupt stream).
	Skipped map[string]int64
}

func (r *Result) skip(reason string) { r.Skip(reason, 1) }

// Skip counts n members or streams not decoded in full for reason.
func (r *Result) Skip(reason string, n int64) {
	if r.Skipped == nil {
		r.Skipped = map[string]int64{}
	}
	r.Skipped[reason] += n
}

// Add sums another walk's counts into r.
func (r *Result) Add(o Result) {
	r.Leaves += o.Leaves
	r.Decoded += o.Decoded
	r.StoredSkipped += o.StoredSkipped
	r.PackagedMembers += o.PackagedMembers
	r.Consumed += o.Consumed
	for k, n := range o.Skipped {
		r.Skip(k, n)
	}
}

// Notes writes the skipped counts as sentences, sorted: "2 members or
// streams not decoded in full: over the 4.0 GiB decoded cap".
func (r Result) Notes() []string {
	var out []string
	for reason, n := range r.Skipped {
		out = append(out, fmt.Sprintf("%d %s not decoded in full: %s", n, plural(n, "member or stream", "members or streams"), reason))
	}
	sort.Strings(out)
	return out
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// capError stops a stream or a walk at a cap; its text is the reason
// counted in Result.Skipped.
type capError struct {
	reason string
	// whole stops the whole walk, not only the current stream.
	whole bool
}

func (e *capError) Error() string { return "decode: " + e.reason }

// IsCap reports whether err is a cap of this package (a walk stopped by a
// limit rather than by bad input).
func IsCap(err error) bool {
	var c *capError
	return errors.As(err, &c)
}

// Budget is the decoded bytes all walks of one target may produce
// together (the scan's absolute cap per target). It is safe for
// concurrent use; nil means no cap.
type Budget struct {
	max  int64
	mu   sync.Mutex
	used int64
}

// NewBudget returns a budget of max decoded bytes.
func NewBudget(max int64) *Budget { return &Budget{max: max} }

// Take reserves n bytes; false when the budget is spent.
func (b *Budget) Take(n int64) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		b.used = b.max
		return false
	}
	b.used += n
	return true
}

// Used reports the bytes reserved so far.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Max is the budget's cap.
func (b *Budget) Max() int64 {
	if b == nil {
		return 0
	}
	return b.max
}

// Options configure a walk.
type Options struct {
	Limits Limits
	// Budget is shared by the walks of one target; nil for none.
	Budget *Budget
	// Codec, when set, is the container's codec, taken as given instead
	// of sniffed: raw deflate, which has no magic, is found this way.
	Codec string
	// SkipStoredLeaves leaves out the members whose bytes are the
	// container's own bytes, unchanged: the plain members (no container
	// inside) of a tar, ar or cpio archive that no stream encloses. A
	// caller sets it for a container whose raw bytes it has scanned
	// already and found nothing in; such members are read past, not
	// handed to the callback, and counted in Result.StoredSkipped.
	// Containers inside them are still decoded.
	SkipStoredLeaves bool
	// HeadOnly is for a caller that reads only a leaf's first bytes:
	// decoders whose window fills before they return a byte (xz's
	// LZMA2 decoder fills its dictionary, a MiB for a kernel module's
	// stream) get the smallest window their format allows (4 KiB), so
	// that the first bytes cost little. Bytes past that window may not
	// decode.
	HeadOnly bool
	// Packaged, when set, is the set of compressed files that package
	// records prove unmodified, which the caller left undecoded: their
	// content is the packages', public. An archive member that holds a
	// container (a compressed stream, an archive), of at most
	// MaxPackagedMember bytes and of a size that some file of the set
	// has (or of a size its archive does not give), is read and hashed
	// before it is walked, and one of the set is left, counted in
	// Result.PackagedMembers: the same bytes as that package file (a
	// container store's layer blob holds the man pages that the unpacked
	// layer has as files). One member is held at a time: members inside
	// it are walked unchecked.
	Packaged PackagedFiles
	// Scratch, when set, keeps the walk's decoders for the caller's next
	// walk: a disk holds thousands of small streams (a gzip'd changelog
	// each), and a new DEFLATE reader allocates and zeroes 150 KiB. One
	// walk at a time may use a Scratch.
	Scratch *Scratch
	// Gate, when set, bounds the decoder memory of this walk and the
	// others that share it, together (MemoryGate).
	Gate *MemoryGate
	// Reservation, when set, is the walk's standing at its gate (and
	// Gate is not used): the caller's, which may hold bytes of its own
	// in it during the walk (from the callback) and after.
	Reservation *Reservation
}

// PackagedFiles is a set of files by size and MD5 (Options.Packaged).
type PackagedFiles interface {
	// HasSize says whether a file of the set has this size.
	HasSize(size int64) bool
	// Has says whether the set holds a file of this size and MD5.
	Has(size int64, sum [md5.Size]byte) bool
}

// Scratch holds decoders that walks are done with, for the next walk on
// the same goroutine. Its zero value is ready to use.
type Scratch struct {
	packaged  []byte // MaxPackagedMember+1 bytes, for Options.Packaged
	inflaters []*inflate.Reader
	gzips     []*inflate.GzipReader
	srcs      []*src
	probes    []*src // sources that hold moduleProbeLen bytes (kmod.go)
}

// deadline returns the walk's context, bounded by MaxTime of its own time
// (walkClock).
func deadline(ctx context.Context, l Limits) (*walkClock, context.CancelFunc) {
	return newWalkClock(ctx, l.MaxTime)
}
