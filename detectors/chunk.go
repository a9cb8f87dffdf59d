package detectors

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strconv"
)

// Bounds of the structural (keyword-less) rules; they feed Margin.
const (
	maxKeytab         = 16 << 10 // keytab bytes handed to the parser
	aesMaxScheduleLen = 240      // AES-256 expanded key
	aesMaxBitErrors   = 10       // aeskeyfind's default tolerance
	maxDERKey         = 12 << 10 // a 16384-bit PKCS#8 RSA key is about 9.4 KB
	maxFullScanMatch  = 4 << 10  // assumed longest match of a keyword-less user rule
	keytabAlign       = 512      // keytab files start on a sector/block boundary
	followSpan        = 512      // bytes after a keyword a Follow gate sees
	// A rule's gates and regexp read a window of a few hundred bytes at
	// each keyword hit: the gate DFA at about 1 ns a byte, Go's regexp at
	// 100 to 1000 ns a byte. Text that repeats a keyword every few bytes
	// (64 MiB of "AKIA" ran at 0.1 MB/s) makes that work quadratic. So
	// each rule gets a budget of work per chunk that found nothing new
	// (a fruitless window): fruitlessBase units plus fruitlessPerByte per
	// owned byte, a gate step costing one unit and a regexp byte
	// regexpWeight. Once it is spent, the rule's further hits in the chunk
	// are counted, not validated (Engine.Scan reports them through
	// ScanOptions.Skipped). Windows that find a new secret never count:
	// real secrets cost what they cost, and the caller's per-rule cap
	// (ScanOptions.Enough) bounds how many it wants.
	fruitlessBase    = 1 << 20
	fruitlessPerByte = 4
	regexpWeight     = 128
)

// found is a validated match in window coordinates. secret is only hashed.
type found struct {
	s, e     int
	secret   []byte
	ms, me   int    // the whole regex match (0, 0: the secret)
	match    []byte // the whole match and the line(s) holding it, for
	line     []byte // allowlists; nil for binary secrets
	sev      Severity
	meta     map[string]string
	keyFP    string
	preview  string
	rulePfx  bool // preview may show the keyword prefix of the secret
	binLabel string
}

type seenKey struct {
	rule       int
	start, end int64
}

// chunkScanner is one worker's reusable state.
type chunkScanner struct {
	e    *Engine
	buf  []byte
	keys memoryKeySearch // the memory-key search of the chunk at hand
	hits []keywordHit
	dec  []byte
	seen map[seenKey]struct{}
	out  []Match
	// covers holds the spans of the whole matches of rules that subsume
	// others, found in this chunk's bytes whether or not the chunk owns
	// them (see dropSubsumed).
	covers []cover
	// gates holds this worker's lazily built DFAs, two per rule (follow
	// and main regexp).
	gates []*gateDFA
	// probe finds keytab candidates during the prefilter's pass.
	probe sectorProbe
	// fruitless counts each rule's fruitless windows in this chunk, and
	// skipped the hits left unvalidated once it reached the budget (or
	// while ScanOptions.Enough says the rule has enough). coveredTo is,
	// per rule and encoding, the buffer offset up to which an accepted
	// match already covers the text: a keyword inside it is skipped.
	fruitless, skipped []int
	coveredTo          []int
	enough             []bool
	skips              []Skip
	// secrets remembers the (rule, fingerprint) pairs this chunk already
	// produced: a match that repeats one is fruitless too, so 64 MiB of
	// one key on every line costs a bounded number of windows per chunk.
	// It is emptied when it reaches maxChunkSecrets.
	secrets map[ruleSecret]struct{}
	// flush, when set, hands matches to the caller before the chunk
	// ends (see flushBefore); flushAt is the size of out that calls it.
	flush   func([]Match)
	flushAt int
	ready   []Match
	// sigs are the signatures found in the chunk (ScanOptions.Signatures).
	sigs []sigHit
}

// Bounds on what one chunk holds, whatever its bytes: a chunk of nothing
// but distinct secrets (a 4 MiB chunk of 98-byte lines holds 128,000
// matches) held them all until it ended, 60 MB per worker, 1 GB of RSS
// with 16 workers.
const (
	// hitWindow: bytes of a chunk whose keyword hits are held at once.
	hitWindow = 256 << 10
	// flushMatches: matches a chunk holds before it hands on those no
	// later keyword hit can drop or repeat.
	flushMatches = 2048
	// maxChunkSecrets: (rule, secret) pairs remembered for the fruitless
	// budget. Past it the chunk forgets them, so a repeated secret
	// costs a window again; its rule's findings are capped by then.
	maxChunkSecrets = 1 << 14
)

type ruleSecret struct {
	rule int
	sum  [32]byte
}

// Skip says how many keyword hits of a rule one chunk left unvalidated
// because the rule spent its budget of fruitless windows there.
type Skip struct {
	RuleID string
	Hits   int
}

func (e *Engine) newChunkScanner() *chunkScanner {
	return &chunkScanner{e: e, seen: map[seenKey]struct{}{}}
}

// getChunkScanner returns an idle worker state, or a new one.
func (e *Engine) getChunkScanner() *chunkScanner {
	if cs, ok := e.scanners.Get().(*chunkScanner); ok {
		return cs
	}
	return e.newChunkScanner()
}

func (cs *chunkScanner) buffer(n int) []byte {
	if cap(cs.buf) < n {
		cs.buf = make([]byte, n)
	}
	return cs.buf[:n]
}

// scanChunk finds the matches whose start lies in own; buf holds the bytes
// [base, base+len(buf)).
func (cs *chunkScanner) scanChunk(buf []byte, base int64, own Range, opts ScanOptions) []Match {
	e := cs.e
	cs.out = cs.out[:0]
	cs.covers = cs.covers[:0]
	cs.sigs = cs.sigs[:0]
	clear(cs.seen)
	lo, hi := int(own.Start-base), int(own.End-base)
	// Every match starts at most hitBefore bytes before its keyword
	// occurrence and at most hitAfter bytes after it (a pair rule's
	// secret follows its keyword); so only keyword occurrences starting
	// in [lo-hitAfter, hi+hitBefore) can produce matches owned by this
	// chunk, and the prefilter need not look at the rest of the margins.
	// (Before 2026-12-07 the lookback was the longest keyword's length:
	// a pair whose key ID ended one chunk and whose secret began the
	// next was lost, as FuzzScan found with 61-byte chunks.)
	pa := max(0, lo-max(e.maxKwLen, e.hitAfter))
	pb := min(len(buf), hi+e.hitBefore+e.maxKwLen)
	var probe *sectorProbe
	if !opts.MemoryOnly && (e.keytab != nil || len(opts.Signatures) > 0 && opts.SignatureAt != nil) {
		// Sector offsets are absolute: base+pa+o = 0 (mod keytabAlign).
		phase := int((keytabAlign - (base+int64(pa))%keytabAlign) % keytabAlign)
		// A keytab starts with its format version, 0x0502.
		cs.probe = sectorProbe{phase: phase, align: keytabAlign, keytab: e.keytab != nil, magic: [2]byte{0x05, 0x02},
			found: cs.probe.found[:0], sigFound: cs.probe.sigFound[:0], later: cs.probe.later}
		if opts.SignatureAt != nil {
			cs.probe.setSignatures(opts.Signatures)
		}
		probe = &cs.probe
	}
	if len(cs.fruitless) != len(e.rules) {
		cs.fruitless, cs.skipped = make([]int, len(e.rules)), make([]int, len(e.rules))
		cs.coveredTo, cs.enough = make([]int, 2*len(e.rules)), make([]bool, len(e.rules))
		cs.secrets = map[ruleSecret]struct{}{}
	}
	clear(cs.fruitless)
	clear(cs.skipped)
	clear(cs.coveredTo)
	clear(cs.secrets)
	for i, r := range e.rules {
		cs.enough[i] = opts.Enough != nil && opts.Enough(r.ID)
	}
	budget := fruitlessBase + (hi-lo)*fruitlessPerByte
	cs.flushAt = flushMatches
	// The prefilter's hits are taken a window at a time: 4 MiB of a
	// keyword repeated are a million hits, 16 MB per worker held at
	// once.
	// The probe runs inside each window's pass, while its bytes are in
	// the cache (a pass of its own over the chunk afterwards missed the
	// cache at every sector: three times the cost), each window probing
	// up to where the next one starts.
	// The memory-key search, likewise, takes each window's blocks right
	// after the prefilter has read them.
	keys := opts.Memory && cs.startMemoryKeys(buf, base, lo, hi)
	for wa := pa; wa < pb; wa += hitWindow {
		wb := min(pb, wa+hitWindow)
		end := min(pb, wb+e.maxKwLen-1) // keywords starting before wb
		nf, ns := 0, 0
		if probe != nil {
			probe.phase = int((keytabAlign - (base+int64(wa))%keytabAlign) % keytabAlign)
			probe.end, probe.done = wb-wa, false
			if end == pb {
				probe.end = end - wa
			}
			nf, ns = len(probe.found), len(probe.sigFound)
		}
		if opts.MemoryOnly {
			cs.hits = cs.hits[:0]
		} else {
			cs.hits = e.pf.scan(buf[wa:end], cs.hits[:0], probe)
		}
		if keys {
			cs.keys.Until(wb)
		}
		if probe != nil {
			if !probe.done {
				// No vector filter ran (or no keyword is enabled):
				// probe the window here, while it is in the cache. (Its
				// reads, a sector apart, wait for memory at each one
				// when they come first.)
				probe.check(buf[wa:end], 0, end-wa)
			}
			for i := nf; i < len(probe.found); i++ {
				probe.found[i] += wa
			}
			for i := ns; i < len(probe.sigFound); i++ {
				probe.sigFound[i].off += int64(wa)
			}
		}
		n := 0
		for _, h := range cs.hits {
			if wa+h.pos < wb || end == pb {
				h.pos += wa
				cs.hits[n] = h
				n++
			}
		}
		cs.hits = cs.hits[:n]
		cs.validateHits(buf, base, lo, hi, budget, opts)
	}
	if keys {
		cs.keys.Finish()
	}
	for _, ri := range e.fullScan {
		if opts.MemoryOnly {
			break
		}
		r := e.rules[ri]
		for _, m := range r.regexps().re.FindAllSubmatchIndex(buf, -1) {
			if m[0] < lo || m[0] >= hi {
				continue
			}
			if f, ok := cs.regexMatch(r, buf, m); ok {
				if len(r.allow) > 0 {
					f.fillContext(buf)
				}
				cs.add(r, base, lo, hi, f, 0, 1, "")
			}
		}
	}
	if probe != nil {
		cs.sigs = cs.sigs[:0]
		for _, h := range probe.sigFound {
			if o := int(h.off); o >= lo && o < hi {
				cs.sigs = append(cs.sigs, sigHit{base + h.off, h.sig})
			}
		}
	}
	if e.keytab != nil && probe != nil {
		for _, p := range probe.found {
			if p >= lo && p < hi {
				cs.keytabAt(buf, base, lo, hi, p)
			}
		}
	}
	cs.skips = cs.skips[:0]
	for i, n := range cs.skipped {
		if n > 0 {
			cs.skips = append(cs.skips, Skip{RuleID: e.rules[i].ID, Hits: n})
		}
	}
	if len(cs.covers) > 0 {
		cs.dropSubsumed()
	}
	return cs.out
}

// flushBefore hands the caller (cs.flush) the matches found so far that
// start before buffer offset horizon, leaving out those a cover found so
// far subsumes: a later keyword hit at or past horizon+hitBefore can
// neither repeat such a match (its windows start at or past horizon) nor
// subsume it (its covers start there too). Where a rule without keywords
// subsumes others (its covers come after every hit), the matches of
// rules it may subsume wait for the chunk's end. Then the caller is asked
// again which rules have enough (ScanOptions.Enough), so that a rule
// filled within the chunk stops being validated there.
func (cs *chunkScanner) flushBefore(base int64, horizon int, opts ScanOptions) {
	e := cs.e
	cut := base + int64(horizon)
	ready, kept := cs.ready[:0], cs.out[:0]
	for _, m := range cs.out {
		subsumable := len(e.byID[m.RuleID].subsumedBy) > 0
		switch {
		case m.Start >= cut || subsumable && e.lateCovers:
			kept = append(kept, m)
		case !subsumable || !cs.subsumed(m):
			ready = append(ready, m)
		}
	}
	clear(cs.out[len(kept):]) // drop the strings and maps handed on
	cs.out, cs.ready = kept, ready
	if len(ready) > 0 {
		cs.flush(ready)
		clear(ready)
	}
	for k := range cs.seen {
		if k.start < cut {
			delete(cs.seen, k)
		}
	}
	cs.covers = slices.DeleteFunc(cs.covers, func(c cover) bool { return c.end <= cut })
	for i, r := range e.rules {
		cs.enough[i] = opts.Enough != nil && opts.Enough(r.ID)
	}
	cs.flushAt = max(flushMatches, 2*len(cs.out))
}

// validateHits runs the rules of each keyword hit in cs.hits over its
// window of buf, within the rules' fruitless budget.
func (cs *chunkScanner) validateHits(buf []byte, base int64, lo, hi, budget int, opts ScanOptions) {
	e := cs.e
	for _, h := range cs.hits {
		if len(cs.out) >= cs.flushAt && cs.flush != nil {
			cs.flushBefore(base, h.pos-e.hitBefore, opts)
		}
		kl := e.kwLen[h.kw]
		for _, ref := range e.kwRules[h.kw] {
			r := e.rules[ref.rule]
			scale := 1
			if ref.utf16 {
				scale = 2
			}
			// A match reachable from this hit lies in
			// [pos-Before, pos+len+After] (scaled); skip hits that cannot
			// produce a match owned by this chunk.
			if h.pos+kl+scale*r.After < lo || h.pos-scale*r.Before >= hi {
				continue
			}
			cov := 2 * r.idx
			if ref.utf16 {
				cov++
			}
			if h.pos < cs.coveredTo[cov] {
				continue // inside a match this rule already reported
			}
			if cs.fruitless[r.idx] >= budget || cs.enough[r.idx] {
				cs.skipped[r.idx]++
				continue
			}
			if ref.utf16 {
				cs.windowUTF16(buf, base, lo, hi, h.pos, kl, r)
			} else {
				cs.windowASCII(buf, base, lo, hi, h.pos, kl, r)
			}
		}
	}
}

// cover is the span of a whole match of a rule that subsumes others.
type cover struct {
	rule       int
	start, end int64
}

// dropSubsumed removes the matches whose secret lies inside a whole match
// of a rule that subsumes theirs: an AWS key ID inside a key-pair match is
// part of that pair's finding. The pair's match starts at or just before
// the key ID, so the chunk that owns the key ID has seen the pair's
// keyword hit and match, whichever chunk owns the pair.
func (cs *chunkScanner) dropSubsumed() {
	kept := cs.out[:0]
	for _, m := range cs.out {
		if !cs.subsumed(m) {
			kept = append(kept, m)
		}
	}
	cs.out = kept
}

func (cs *chunkScanner) subsumed(m Match) bool {
	r := cs.e.byID[m.RuleID]
	if r == nil || len(r.subsumedBy) == 0 {
		return false
	}
	for _, c := range cs.covers {
		if c.start <= m.Start && m.End <= c.end {
			for _, by := range r.subsumedBy {
				if by == c.rule {
					return true
				}
			}
		}
	}
	return false
}

func (cs *chunkScanner) windowASCII(buf []byte, base int64, lo, hi, pos, kl int, r *compiledRule) {
	ws := max(0, pos-r.Before)
	ws += lineStart(buf[ws:pos])
	we := min(len(buf), pos+kl+r.After)
	w := buf[ws:we]
	cs.validate(r, w, pos-ws, kl, func(f found) bool {
		cs.coveredTo[2*r.idx] = max(cs.coveredTo[2*r.idx], ws+f.e)
		return cs.add(r, base, lo, hi, f, ws, 1, "")
	})
}

// lineStart returns the offset just after the last line break or NUL in b
// (0 if none): windows start at the keyword's line, so that (?m)^ in a rule
// means a real line start, also for a file that begins after zero padding or
// binary data.
func lineStart(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' || b[i] == 0 {
			return i + 1
		}
	}
	return 0
}

// windowUTF16 decodes the UTF-16LE window around a hit to ASCII (other code
// units become NUL), validates it like ASCII text and maps offsets back.
func (cs *chunkScanner) windowUTF16(buf []byte, base int64, lo, hi, pos, kl int, r *compiledRule) {
	ws := pos - 2*min(r.Before, pos/2)
	chars := kl/2 + r.After
	we := pos + 2*min(chars, (len(buf)-pos)/2)
	dec := cs.dec[:0]
	for k := ws; k+1 < we; k += 2 {
		c := buf[k]
		if buf[k+1] != 0 || c >= 0x80 {
			c = 0
		}
		dec = append(dec, c)
	}
	cs.dec = dec
	kp := (pos - ws) / 2
	adj := lineStart(dec[:kp])
	w := dec[adj:]
	cs.validate(r, w, kp-adj, kl/2, func(f found) bool {
		cs.coveredTo[2*r.idx+1] = max(cs.coveredTo[2*r.idx+1], ws+2*adj+2*f.e)
		return cs.add(r, base, lo, hi, f, ws+2*adj, 2, "utf16le")
	})
}

// validate runs a rule's validator over window w, whose keyword occurrence is
// w[kp:kp+kl], and calls emit for each accepted match; emit reports
// whether the match was new (see chunkScanner.secrets).
func (cs *chunkScanner) validate(r *compiledRule, w []byte, kp, kl int, emit func(found) bool) {
	out := emit
	if len(r.allow) > 0 {
		out = func(f found) bool {
			f.fillContext(w)
			return emit(f)
		}
	}
	switch r.check {
	case checkPEM, checkPPK:
		// These search the text after the keyword for the end of the
		// block (up to 12 KiB): a byte of it costs a unit.
		find := findPEM
		if r.check == checkPPK {
			find = findPPK
		}
		if f, ok := find(r, w, kp, kl); !ok || !out(f) {
			cs.fruitless[r.idx] += len(w) - kp
		}
		return
	}
	if r.Follow != "" {
		after := w[kp+kl : min(len(w), kp+kl+followSpan)]
		ok, n := cs.mayMatch(r, gateFollow, after, len(after))
		if !ok {
			cs.fruitless[r.idx] += n
			return
		}
		if !r.regexps().follow.Match(after) {
			cs.fruitless[r.idx] += (1 + regexpWeight) * n
			return
		}
	}
	// A match must overlap the keyword, so it starts before kp+kl.
	ok, gated := cs.mayMatch(r, gateRegex, w, kp+kl)
	if !ok {
		cs.fruitless[r.idx] += gated
		return
	}
	// Matches come in the order of their starts and do not overlap, so
	// once one ends at or after the keyword's end, no later one can
	// overlap the keyword: ask for a few at a time instead of all the
	// window holds (a key dump has one on every line of it, and every
	// line's keyword has such a window). The first is most often the one
	// at the keyword, and asking for one stops the search there. Before,
	// the search stopped only at a match that started after the keyword,
	// so a window whose first match was the keyword's was searched again
	// to its end for a second: 50 µs instead of 4 for a 630-byte window
	// of url-credentials.
	//
	// scanned is what the searches read: up to the last match each
	// returned, or the whole window when it found fewer than asked. A
	// match rejected afterwards (a weak password, an example key) costs
	// the budget that, not the whole window, or a file dense with
	// rejected matches (the url package's test.js: 34 URLs with weak
	// passwords among 313) spends a small stream's budget on them and
	// leaves its one strong password unvalidated.
	re := r.regexps().re
	var ms [][]int
	scanned := 0
	for n := 1; ; n *= 2 {
		ms = re.FindAllSubmatchIndex(w, n)
		if len(ms) < n {
			scanned += len(w)
			break
		}
		scanned += ms[n-1][1]
		if ms[n-1][1] >= kp+kl {
			break
		}
	}
	fruitful := false
	for _, m := range ms {
		if m[1] <= kp || m[0] >= kp+kl {
			continue // the match must overlap its keyword
		}
		if f, ok := cs.regexMatch(r, w, m); ok && out(f) {
			fruitful = true
		}
	}
	if !fruitful {
		cs.fruitless[r.idx] += gated + regexpWeight*max(scanned, 1)
	}
}

// mayMatch runs the DFA of a rule's follow or main regexp over b: false
// means the regexp has no match in b that starts before startEnd. It also
// returns the bytes the DFA read.
func (cs *chunkScanner) mayMatch(r *compiledRule, which int, b []byte, startEnd int) (bool, int) {
	g := r.gate(which)
	if g == nil {
		return true, 0
	}
	if cs.gates == nil {
		cs.gates = make([]*gateDFA, 2*len(cs.e.rules))
	}
	d := cs.gates[2*r.idx+which]
	if d == nil {
		d = newGateDFA(g)
		cs.gates[2*r.idx+which] = d
	}
	return d.mayMatch(b, startEnd)
}

// add turns a found match (window offsets, window starting at buffer offset
// ws, scale 2 for UTF-16) into a Match if this chunk owns it.
func (cs *chunkScanner) add(r *compiledRule, base int64, lo, hi int, f found, ws, scale int, enc string) bool {
	if r.subsumes {
		ms, me := f.ms, f.me
		if ms == 0 && me == 0 {
			ms, me = f.s, f.e
		}
		cs.covers = append(cs.covers, cover{r.idx, base + int64(ws+scale*ms), base + int64(ws+scale*me)})
	}
	start := ws + scale*f.s
	if start < lo || start >= hi {
		return true // another chunk's: says nothing about this one
	}
	end := ws + scale*f.e
	key := seenKey{rule: r.idx, start: base + int64(start), end: base + int64(end)}
	if _, dup := cs.seen[key]; dup {
		return false
	}
	cs.seen[key] = struct{}{}
	var allowedPaths []*regexp.Regexp
	if len(r.allow) > 0 {
		drop, paths := r.allowed(&f)
		if drop {
			return false // allowlisted: nothing new
		}
		allowedPaths = paths
	}
	sum := sha256.Sum256(f.secret)
	rs := ruleSecret{r.idx, sum}
	_, repeated := cs.secrets[rs]
	if len(cs.secrets) >= maxChunkSecrets {
		clear(cs.secrets)
	}
	cs.secrets[rs] = struct{}{}
	preview := f.preview
	if preview == "" {
		preview = redact(r, f)
	}
	cs.out = append(cs.out, Match{
		RuleID: r.ID, Category: r.Category, Description: r.Description,
		Severity: f.sev, Start: key.start, End: key.end,
		Fingerprint:    "sha256:" + hex.EncodeToString(sum[:]),
		Preview:        preview,
		KeyFingerprint: f.keyFP,
		Encoding:       enc,
		Meta:           f.meta,
		allowedPaths:   allowedPaths,
	})
	return !repeated
}

// redact builds the default preview: the rule's keyword when the secret
// starts with it (a public token prefix such as "ghp_"), then the length.
func redact(r *compiledRule, f found) string {
	if f.binLabel != "" {
		return f.binLabel + " (" + strconv.Itoa(len(f.secret)) + " bytes)"
	}
	pfx := ""
	for _, k := range r.prefixes {
		if len(k) > len(pfx) && len(k) <= 16 && len(k) < len(f.secret) && bytes.HasPrefix(f.secret, []byte(k)) {
			pfx = k
		}
	}
	return pfx + "…(" + strconv.Itoa(len(f.secret)) + " chars)"
}

// keytabAt reports the keytab at p, if the bytes there parse as one.
func (cs *chunkScanner) keytabAt(buf []byte, base int64, lo, hi, p int) {
	n, principals, err := parseKeytab(buf[p:min(len(buf), p+maxKeytab)])
	if err != nil || n <= 0 {
		return
	}
	f := found{s: p, e: p + n, secret: buf[p : p+n], sev: cs.e.keytab.Severity, binLabel: "Kerberos keytab",
		meta: map[string]string{"entries": strconv.Itoa(len(principals))}}
	if len(principals) > 0 {
		f.meta["principals"] = joinLimited(principals, 8)
	}
	cs.add(cs.e.keytab, base, lo, hi, f, 0, 1, "")
}

// startMemoryKeys starts the AES key-schedule and DER RSA key searches,
// one pass over buf that the caller runs in parts with cs.keys (the search
// skips zero pages itself); it returns false when neither rule is enabled.
func (cs *chunkScanner) startMemoryKeys(buf []byte, base int64, lo, hi int) bool {
	if cs.e.aes == nil && cs.e.rsaDER == nil {
		return false
	}
	var aes func(off int, key []byte)
	if r := cs.e.aes; r != nil {
		aes = func(off int, key []byte) {
			bits := len(key) * 8
			f := found{s: off, e: off + scheduleLen(len(key)), secret: key, sev: r.Severity,
				binLabel: "AES-" + strconv.Itoa(bits) + " key", meta: map[string]string{"bits": strconv.Itoa(bits)}}
			cs.add(r, base, lo, hi, f, 0, 1, "")
		}
	}
	var der func(off, length int, info keyInfo)
	if r := cs.e.rsaDER; r != nil {
		der = func(off, length int, info keyInfo) {
			if off < 0 || length <= 0 || off+length > len(buf) {
				return
			}
			f := found{s: off, e: off + length, secret: buf[off : off+length], sev: r.Severity,
				binLabel: "DER private key", keyFP: info.KeyFingerprint, meta: keyMeta(info)}
			cs.add(r, base, lo, hi, f, 0, 1, "")
		}
	}
	cs.keys.Start(buf, aesMaxBitErrors, aes, der)
	return true
}

// scheduleLen is the size of the expanded AES key for a key of n bytes.
func scheduleLen(n int) int {
	switch n {
	case 16:
		return 176
	case 24:
		return 208
	}
	return 240
}

func joinLimited(ss []string, n int) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i == n {
			b.WriteString(",…")
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}
