package detectors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// Match is one occurrence of a secret. It never holds the secret itself:
// only its fingerprint, a redacted preview and non-secret metadata.
type Match struct {
	RuleID, Category, Description string
	Severity                      Severity
	// Start and End are the absolute offsets of the secret value's text in
	// the scanned space (for UTF-16LE text, of its UTF-16 bytes).
	Start, End int64
	// Fingerprint is "sha256:" + hex(sha256(secret value)).
	Fingerprint string
	// Preview is redacted: a non-secret prefix (token prefix, PEM BEGIN line)
	// and the length.
	Preview string
	// KeyFingerprint is the OpenSSH "SHA256:…" fingerprint of a parsed key.
	KeyFingerprint string
	// Encoding is "" for ASCII/UTF-8 text and binary, "utf16le" for UTF-16LE.
	Encoding string
	// Meta holds non-secret metadata (key type, bits, user name, key id…).
	Meta map[string]string
	// allowedPaths are the allowlists' path patterns that cover this
	// match's locations (see AllowedAt).
	allowedPaths []*regexp.Regexp
}

// EngineOptions configures NewEngine.
type EngineOptions struct {
	// Disable lists rule IDs to drop; an unknown ID is an error.
	Disable []string
	// Workers is the number of goroutines Scan uses (0: GOMAXPROCS).
	Workers int
	// ChunkSize is the number of bytes each work item owns (0: 4 MiB, or
	// up to 16 MiB for lent bytes: see lentChunkSize). Small values are
	// for tests.
	ChunkSize int
	// Allowlists apply to every rule, or to the rules each names (a rules
	// file's global [allowlist] tables: Config.Allowlists).
	Allowlists []Allowlist
}

// ScanOptions configures one Scan.
type ScanOptions struct {
	// Memory enables the memory-structure rules (AES key schedules, DER RSA
	// keys): on for memory views and swap, opt-in elsewhere.
	Memory bool
	// MemoryOnly runs the memory-structure rules alone (with Memory): no
	// keyword, regexp or keytab rule, no signature probe. For bytes whose
	// text a scan has read already (a process's core, a swap area in a
	// disk view), at the key searches' speed.
	MemoryOnly bool
	// Progress, when set, hears the bytes of each range chunk as soon as
	// that chunk is scanned (its own bytes, context margins excluded), so
	// that a progress display moves within a long view. It is called from
	// the scanning goroutines, concurrently.
	Progress func(n int64)
	// Skipped, when set, hears of the keyword hits a chunk left
	// unvalidated because their rule spent its budget of fruitless
	// windows (see fruitlessBase); called from one goroutine at a time.
	Skipped func(Skip)
	// Enough, when set, is asked at the start of each chunk, and again
	// each time a chunk hands on a batch of matches, whether a rule
	// already has all the findings its caller keeps (the scanner's caps
	// per view and per scan): such a rule's further hits in the chunk are
	// counted as skipped instead of validated. Called from every worker at
	// once.
	Enough func(ruleID string) bool
	// Signatures are magic numbers looked for at every offset of the
	// scanned ranges that is a multiple of SignatureAlign, while the chunk
	// is in the cache: a file's first byte is at a block boundary, in
	// free space as in RAM, so a compressed file, live or deleted, is
	// found without a pass of its own. SignatureAt hears each one found
	// (the aligned offset and its index in Signatures), from one
	// goroutine at a time.
	Signatures  []Signature
	SignatureAt func(off int64, sig int)
}

// Signature is a magic number At bytes past an aligned offset (tar's
// "ustar" is 257 bytes into its header).
type Signature struct {
	At    int
	Magic []byte
}

// SignatureAlign is the alignment at which ScanOptions.Signatures are
// looked for: a sector.
const SignatureAlign = 512

// A Slicer lends bytes of its space without copying them: a memory-mapped
// raw image. Scan uses Slice instead of ReadAt where r implements it, which
// saves the copy from the page cache that is most of a scan's system time.
type Slicer interface {
	// Slice returns the n bytes at off, or false where it cannot lend all
	// of them (Scan then uses ReadAt). The bytes must stay mapped until
	// Scan returns; Scan never writes to them. Reading them may fault (a
	// mapped file truncated meanwhile): Scan turns that into an error.
	Slice(off int64, n int) ([]byte, bool)
}

// A Releaser is a Slicer that wants to hear when lent bytes are no longer
// needed: Scan calls Release with the part of each lent chunk it owned once
// it is scanned (a mapped image drops those pages from its mapping, so that
// a scan's resident memory does not grow to the image's size). Release
// must not invalidate the bytes: other chunks' context may still read them.
// Scan's workers call it concurrently.
type Releaser interface {
	Release(b []byte)
}

// Range is a half-open byte range [Start, End) of the scanned space.
type Range struct{ Start, End int64 }

// defaultChunkSize: each chunk is read with Margin() bytes of context on each
// side (28 KiB for the built-in rules), so chunks should be large; 4 MiB
// keeps that overhead near 1% and a worker's buffer within a large L2 or a
// small share of L3.
const defaultChunkSize = 4 << 20

// lentChunkSize is the chunk size for total bytes lent by a Slicer (a
// mapped raw image), which needs no buffer: up to 16 MiB, as long as each
// worker still gets four chunks, and never below defaultChunkSize. Fewer,
// larger chunks rescan less margin and release their pages in fewer calls
// (each a TLB shootdown on the other cores): a warm 1 GiB raw scan went
// from 86% to 89% of cat with 8 MiB chunks and its system time from 25 to
// 13 ms.
func lentChunkSize(total int64, workers int) int64 {
	const maxLent = 16 << 20
	c := total / int64(4*max(workers, 1))
	c &^= 1<<20 - 1 // whole MiB
	return min(max(c, defaultChunkSize), maxLent)
}

// ruleRef says which rule a keyword belongs to and in which encoding.
type ruleRef struct {
	rule  int
	utf16 bool
}

// Engine matches a rule set against byte spaces. It is safe for concurrent use.
type Engine struct {
	rules   []*compiledRule
	byID    map[string]*compiledRule
	pf      *prefilter
	kwRules [][]ruleRef // per prefilter keyword
	kwLen   []int       // keyword length in bytes (as matched)
	// A keyword hit at p can only produce matches starting in
	// (p-hitBefore, p+hitAfter]: see scanChunk. A match starts where
	// its secret does, which for a pair rule is past its keyword
	// (aws-access-key-pair: the secret up to 200 bytes after the key ID).
	hitBefore int
	hitAfter  int
	maxKwLen  int
	fullScan  []int // regex rules without keywords
	// lateCovers: a rule without keywords subsumes others, so its
	// covers are known only at a chunk's end (see flushBefore).
	lateCovers bool
	keytab     *compiledRule
	aes        *compiledRule
	rsaDER     *compiledRule
	margin     int
	workers    int
	chunkSize  int
	// fixedChunk: ChunkSize was given, so lent bytes use it too.
	fixedChunk bool
	// scanners keeps idle workers' state (buffer, lazily built regexp
	// DFAs) from one Scan to the next.
	scanners sync.Pool
}

// Margin bounds the context needed around a range: the longest match any
// rule can produce plus the window around its keyword. For the built-in set
// it is 28672 bytes: the armoured-key rules allow 12 KiB after their keyword
// (a JSON-escaped 4096-bit PEM key is about 3.4 KB, a PGP block with a
// 4096-bit key and subkey about 7 KB), doubled for UTF-16LE text.
func (e *Engine) Margin() int { return e.margin }

// Workers is how many goroutines one Scan runs (EngineOptions.Workers,
// --workers); callers that run scans side by side take it as theirs.
func (e *Engine) Workers() int { return e.workers }

// NewEngine compiles rules into an engine.
func NewEngine(rules []Rule, opts EngineOptions) (*Engine, error) {
	disabled := map[string]bool{}
	for _, id := range opts.Disable {
		disabled[id] = false
	}
	e := &Engine{workers: opts.Workers, chunkSize: opts.ChunkSize, fixedChunk: opts.ChunkSize > 0}
	if e.workers <= 0 {
		e.workers = runtime.GOMAXPROCS(0)
	}
	if e.chunkSize <= 0 {
		e.chunkSize = defaultChunkSize
	}
	var global []*compiledAllowlist
	for i, a := range opts.Allowlists {
		c, err := compileAllowlist(a)
		if err != nil {
			return nil, fmt.Errorf("global allowlist #%d: %w", i+1, err)
		}
		global = append(global, c)
	}
	e.byID = map[string]*compiledRule{}
	seen := map[string]bool{}
	kwIndex := map[string]int{}
	var keywords [][]byte
	margin := 0
	for _, r := range rules {
		if seen[r.ID] {
			return nil, fmt.Errorf("duplicate rule id %q", r.ID)
		}
		seen[r.ID] = true
		if _, ok := disabled[r.ID]; ok {
			disabled[r.ID] = true
			continue
		}
		c, err := compileRule(r)
		if err != nil {
			return nil, err
		}
		c.idx = len(e.rules)
		e.rules = append(e.rules, c)
		e.byID[c.ID] = c
		for _, g := range global {
			if g.appliesTo(c.ID) {
				c.allow = append(c.allow, g)
			}
		}
		switch c.check {
		case checkKeytab:
			e.keytab = c
			margin = max(margin, maxKeytab)
			continue
		case checkAESSchedule:
			e.aes = c
			margin = max(margin, aesMaxScheduleLen)
			continue
		case checkRSADER:
			e.rsaDER = c
			margin = max(margin, maxDERKey)
			continue
		}
		if len(c.Keywords) == 0 {
			e.fullScan = append(e.fullScan, c.idx)
			margin = max(margin, c.Before+c.After+maxFullScanMatch)
			continue
		}
		for _, k := range c.Keywords {
			forms := []struct {
				b     []byte
				utf16 bool
			}{{[]byte(k), false}}
			if !c.NoUTF16 {
				forms = append(forms, struct {
					b     []byte
					utf16 bool
				}{utf16le(k), true})
			}
			for _, f := range forms {
				key := string(foldBytes(f.b))
				if f.utf16 {
					key = "u" + key
				} else {
					key = "a" + key
				}
				i, ok := kwIndex[key]
				if !ok {
					i = len(keywords)
					kwIndex[key] = i
					keywords = append(keywords, f.b)
					e.kwRules = append(e.kwRules, nil)
					e.kwLen = append(e.kwLen, len(f.b))
				}
				ref := ruleRef{rule: c.idx, utf16: f.utf16}
				if !slices.Contains(e.kwRules[i], ref) {
					e.kwRules[i] = append(e.kwRules[i], ref)
				}
				m := c.Before + len(k) + c.After
				before := c.Before
				if f.utf16 {
					m *= 2
					before *= 2
				}
				margin = max(margin, m)
				e.hitBefore = max(e.hitBefore, before)
				e.hitAfter = max(e.hitAfter, m-before)
				e.maxKwLen = max(e.maxKwLen, len(f.b))
			}
		}
	}
	for id, used := range disabled {
		if !used {
			return nil, fmt.Errorf("disable: unknown rule id %q", id)
		}
	}
	for i, g := range global {
		for _, id := range g.rules {
			if !seen[id] {
				return nil, fmt.Errorf("global allowlist #%d: targetRules: unknown rule id %q", i+1, id)
			}
		}
	}
	for _, c := range e.rules {
		for _, id := range c.SubsumedBy {
			if !seen[id] {
				return nil, fmt.Errorf("rule %s: subsumedBy: unknown rule id %q", c.ID, id)
			}
			// A disabled rule subsumes nothing.
			if by := e.byID[id]; by != nil && by != c {
				by.subsumes = true
				c.subsumedBy = append(c.subsumedBy, by.idx)
				e.lateCovers = e.lateCovers || len(by.Keywords) == 0
			}
		}
	}
	pf, err := newPrefilter(keywords)
	if err != nil {
		return nil, err
	}
	e.pf = pf
	e.margin = (margin + 4095) &^ 4095
	return e, nil
}

func foldBytes(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = fold(c)
	}
	return out
}

func utf16le(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i], 0)
	}
	return out
}

// RuleSeverity returns the severity an enabled rule gives its findings at
// most (checks only ever lower it: documentation keys, encrypted keys).
func (e *Engine) RuleSeverity(id string) (Severity, bool) {
	// A map lookup: a caller's ScanOptions.Enough asks this for every
	// rule at every chunk (a scan of a migration stream spent 12% of its
	// time in the linear search this was).
	if r := e.byID[id]; r != nil {
		return r.Severity, true
	}
	return 0, false
}

// UserRuleDigests returns, for each enabled rule that is not built in (a
// --rules file's, or one given to NewEngine), "ID:" and the SHA-256 of its
// definition: a cache of scan results must follow such a rule, which may
// change under the same ID while the tool's version stays (the built-in
// rules change only with it).
func (e *Engine) UserRuleDigests() []string {
	var out []string
	for _, r := range e.rules {
		if r.builtin {
			continue
		}
		def, err := json.Marshal(r.Rule)
		if err != nil { // no field of a Rule fails to marshal; be safe
			def = fmt.Appendf(nil, "%#v", r.Rule)
		}
		sum := sha256.Sum256(def)
		out = append(out, r.ID+":"+hex.EncodeToString(sum[:]))
	}
	return out
}

// Rules returns the IDs of the enabled rules.
func (e *Engine) Rules() []string {
	out := make([]string, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.ID
	}
	return out
}

// job is one chunk: the bytes it owns and the bytes it reads. Matches are
// reported when they start in one of parts, which own spans; parts is nil
// when own is the only one.
type job struct {
	own        Range
	parts      []Range
	readStart  int64
	readLength int
}

// owns reports whether the job reports a match starting at off.
func (j *job) owns(off int64) bool {
	if j.parts == nil {
		return off >= j.own.Start && off < j.own.End
	}
	i := sort.Search(len(j.parts), func(i int) bool { return j.parts[i].End > off })
	return i < len(j.parts) && j.parts[i].Start <= off
}

// ownBytes is the number of bytes the job's parts hold.
func (j *job) ownBytes() int64 {
	if j.parts == nil {
		return j.own.End - j.own.Start
	}
	var n int64
	for _, p := range j.parts {
		n += p.End - p.Start
	}
	return n
}

// packJobs cuts merged (sorted, disjoint ranges of a size-byte space) into
// jobs that own at most chunk bytes each, read with margin bytes of
// context on each side, and yields them in order. Ranges closer than two
// margins are packed into one job, the bytes between them read but not
// reported: a memory dump's data comes in runs of a few pages between its
// holes (zero pages left out), and a job per run read its margins, 56 KiB,
// for every 60 KiB of data, and paid a chunk's fixed costs as often.
func packJobs(merged []Range, size, chunk, margin int64, yield func(job) bool) {
	var cur job
	flush := func() bool {
		if len(cur.parts) == 0 {
			return true
		}
		cur.own = Range{cur.parts[0].Start, cur.parts[len(cur.parts)-1].End}
		if len(cur.parts) == 1 {
			cur.parts = nil
		}
		read := jobFor(cur.own, size, margin)
		cur.readStart, cur.readLength = read.readStart, read.readLength
		ok := yield(cur)
		cur = job{}
		return ok
	}
	for _, rg := range merged {
		for s := rg.Start; s < rg.End; {
			if n := len(cur.parts); n > 0 && (s-cur.parts[n-1].End > 2*margin || s-cur.parts[0].Start >= chunk) {
				if !flush() {
					return
				}
			}
			end := rg.End
			if len(cur.parts) > 0 {
				end = min(end, cur.parts[0].Start+chunk)
			} else {
				end = min(end, s+chunk)
			}
			cur.parts = append(cur.parts, Range{s, end})
			s = end
		}
	}
	flush()
}

// jobFor is the job that owns own alone, with up to margin bytes of
// context on each side, clipped to [0,size).
func jobFor(own Range, size, margin int64) job {
	rs, re := max(0, own.Start-margin), min(size, own.End+margin)
	return job{own: own, readStart: rs, readLength: int(re - rs)}
}

// splitForLending splits a job whose bytes slicer cannot lend whole
// because its context reaches past the run of mapped bytes its own range
// lies in (the end of a RAM segment of an ELF core, a run of clusters
// stored apart from the next): the middle is lent, and only the two edges,
// 2*margin bytes each, are read with ReadAt. Reading the whole job took a
// buffer of a chunk's size, faulted in page by page and filled by a copy:
// a fifth of the CPU time of a 128 MiB ELF core's scan. Other jobs are
// returned as they are.
func splitForLending(j job, size, margin int64, slicer Slicer) []job {
	edge := 2 * margin
	if slicer == nil || j.parts != nil || j.own.End-j.own.Start < 8*edge {
		return []job{j}
	}
	if _, ok := slicer.Slice(j.readStart, j.readLength); ok {
		return []job{j}
	}
	mid := jobFor(Range{j.own.Start + edge, j.own.End - edge}, size, margin)
	if _, ok := slicer.Slice(mid.readStart, mid.readLength); !ok {
		return []job{j}
	}
	return []job{jobFor(Range{j.own.Start, j.own.Start + edge}, size, margin), mid, jobFor(Range{j.own.End - edge, j.own.End}, size, margin)}
}

// Scan reports every match whose Start lies in one of ranges (offsets in r's
// space, [Start,End)), reading up to Margin() bytes of context before and
// after each range (clipped to [0,size)). A match crossing chunk boundaries
// is reported exactly once. Work is spread over all workers with one buffer
// of ChunkSize+2*Margin bytes each; emit is called from one goroutine at a
// time. It returns the number of bytes read.
func (e *Engine) Scan(ctx context.Context, r io.ReaderAt, size int64, ranges []Range, opts ScanOptions, emit func(Match)) (int64, error) {
	merged := normalizeRanges(ranges, size)
	if len(merged) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slicer, _ := r.(Slicer)
	releaser, _ := r.(Releaser)
	var total int64
	for _, rg := range merged {
		total += rg.End - rg.Start
	}
	chunk := int64(e.chunkSize)
	if slicer != nil && !e.fixedChunk {
		chunk = lentChunkSize(total, e.workers)
	}
	// inline: bytes that make one chunk are scanned on the caller's
	// goroutine, with no goroutine started: a registry layer's files are
	// scanned one Scan each (30,000 in one layer), from goroutines of
	// their own, and starting this Scan's packer and workers for each was
	// a fifth of that (2026-12-07).
	inline := total <= chunk
	var jobs chan job
	if inline {
		var list []job
		packJobs(merged, size, chunk, int64(e.margin), func(j job) bool {
			list = append(list, j)
			return true
		})
		jobs = make(chan job, len(list))
		for _, j := range list {
			jobs <- j
		}
		close(jobs)
	} else {
		jobs = make(chan job)
		go func() {
			defer close(jobs)
			packJobs(merged, size, chunk, int64(e.margin), func(j job) bool {
				select {
				case jobs <- j:
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
	}
	var (
		emitMu   sync.Mutex
		scanned  atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	workers := e.workers
	if inline {
		workers = 1
	}
	for range workers {
		wg.Add(1)
		worker := func() {
			defer wg.Done()
			if slicer != nil {
				// A fault on lent bytes must not crash the scan; the
				// setting is per goroutine, and these are ours.
				defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
			}
			cs := e.getChunkScanner()
			defer e.scanners.Put(cs)
			defer func() { cs.flush = nil }()
			for j0 := range jobs {
				for _, j := range splitForLending(j0, size, int64(e.margin), slicer) {
					if ctx.Err() != nil {
						continue
					}
					cs.flush = func(ms []Match) {
						emitMu.Lock()
						defer emitMu.Unlock()
						for _, m := range ms {
							if j.owns(m.Start) {
								emit(m)
							}
						}
					}
					var buf []byte
					lent := false
					if slicer != nil {
						buf, lent = slicer.Slice(j.readStart, j.readLength)
					}
					if !lent {
						buf = cs.buffer(j.readLength)
						n, err := r.ReadAt(buf, j.readStart)
						if n < len(buf) || (err != nil && !errors.Is(err, io.EOF)) {
							if err == nil || errors.Is(err, io.EOF) {
								err = io.ErrUnexpectedEOF
							}
							fail(fmt.Errorf("read %d bytes at offset %d: %w", len(buf), j.readStart, err))
							continue
						}
					}
					found, err := cs.scanLent(buf, j, opts, lent)
					if lent && releaser != nil {
						releaser.Release(buf[j.own.Start-j.readStart : j.own.End-j.readStart])
					}
					if err != nil {
						fail(err)
						continue
					}
					scanned.Add(int64(len(buf)))
					if opts.Progress != nil {
						opts.Progress(j.ownBytes())
					}
					if len(found) > 0 || (len(cs.skips) > 0 && opts.Skipped != nil) || len(cs.sigs) > 0 {
						emitMu.Lock()
						for _, m := range found {
							emit(m)
						}
						for _, h := range cs.sigs {
							opts.SignatureAt(h.off, h.sig)
						}
						if opts.Skipped != nil {
							for _, sk := range cs.skips {
								opts.Skipped(sk)
							}
						}
						emitMu.Unlock()
					}
				}
			}
		}
		if inline {
			worker()
		} else {
			go worker()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return scanned.Load(), firstErr
	}
	if err := ctx.Err(); err != nil {
		return scanned.Load(), err
	}
	return scanned.Load(), nil
}

// scanLent runs scanChunk on one job's bytes. Lent bytes (lent) may fault
// when read; the fault becomes an error naming the job's offset.
func (cs *chunkScanner) scanLent(buf []byte, j job, opts ScanOptions, lent bool) (found []Match, err error) {
	if lent {
		defer func() {
			if v := recover(); v != nil {
				// Only memory faults carry Addr; anything else is a bug.
				if _, ok := v.(interface{ Addr() uintptr }); !ok {
					panic(v)
				}
				found, err = nil, fmt.Errorf("read %d mapped bytes at offset %d: memory fault (was the file truncated during the scan?)", len(buf), j.readStart)
			}
		}()
	}
	found = cs.scanChunk(buf, j.readStart, j.own, opts)
	if j.parts != nil {
		// Matches and signatures starting between the parts are not the
		// job's.
		found = slices.DeleteFunc(found, func(m Match) bool { return !j.owns(m.Start) })
		cs.sigs = slices.DeleteFunc(cs.sigs, func(h sigHit) bool { return !j.owns(h.off) })
	}
	return found, nil
}

// sigHit is a signature found at an aligned offset.
type sigHit struct {
	off int64
	sig int
}

// FindAll scans one buffer; offsets are relative to buf. Matches are sorted
// by Start, then rule ID.
func (e *Engine) FindAll(buf []byte, opts ScanOptions) []Match {
	var out []Match
	_, _ = e.Scan(context.Background(), bytes.NewReader(buf), int64(len(buf)), []Range{{0, int64(len(buf))}}, opts, func(m Match) {
		out = append(out, m)
	})
	sortMatches(out)
	return out
}

func sortMatches(ms []Match) {
	sort.Slice(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.RuleID != b.RuleID {
			return a.RuleID < b.RuleID
		}
		return a.End < b.End
	})
}

// normalizeRanges clips ranges to [0,size), sorts them and merges overlaps.
func normalizeRanges(ranges []Range, size int64) []Range {
	var out []Range
	for _, r := range ranges {
		r.Start = max(r.Start, 0)
		r.End = min(r.End, size)
		if r.Start < r.End {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int {
		if a.Start < b.Start {
			return -1
		}
		if a.Start > b.Start {
			return 1
		}
		return 0
	})
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.Start <= merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, r.End)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}
