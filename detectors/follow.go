package detectors

import (
	"encoding/binary"
	"regexp/syntax"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Regexp gates. Follow gates run at every hit of a frequent keyword
// ("password", "export", "https://"), and most of them fail within a few
// bytes; a rule's main regexp runs over a window of up to a few KiB around
// each hit of its keyword, and for most hits of rare keywords it matches
// nowhere in it. Go's regexp pays a fixed cost per call and its backtracker
// needs tens of microseconds for such a window. So each regexp also gets a
// lazily built byte-level DFA (states are made on first use and cached per
// worker, as in RE2) that answers "can the regexp match here at all?" in one
// table step per byte.
//
// The DFA over-approximates the regexp: it treats end-of-text, end-of-line
// and word-boundary assertions as always satisfied, all non-ASCII runes as
// one class, counted repeats as looser ones (see relaxRepeats), and stops
// with "maybe" where it would need more than gateMaxStates states. So a "no" is final and a "maybe" is confirmed by the
// regexp: results are exactly those of the regexp alone.

const (
	gateMaxStates = 256
	gateMaxRepeat = 16
	gateDead      = -1
	gateUnknown   = -2
)

// gateProg is the immutable part of a gate: the compiled program, its byte
// classes and start closures. Shared by all workers.
type gateProg struct {
	prog       *syntax.Prog
	class      [256]uint8 // byte -> class
	reps       []int      // representative byte per class; -1: non-ASCII
	first      []int      // start closure at the beginning of the text
	firstMatch bool
	later      []int // start closure elsewhere (unanchored search)
	laterMatch bool
}

// newGateProg compiles a regexp in RE2 syntax for gating; nil if it does not
// parse or has too many byte classes.
func newGateProg(expr string) *gateProg {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	relaxRepeats(re)
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil
	}
	g := &gateProg{prog: prog}
	// ASCII bytes taken by the same instructions share a class; all
	// non-ASCII runes (first byte >= 0x80) form one more class, in which an
	// instruction that takes some non-ASCII rune is assumed to take any.
	// Counted repeats copy one character class many times, so the ASCII
	// bytes of each distinct rune instruction are found once (this runs at
	// each rule's first keyword hit in every process).
	type runeInst struct {
		op    syntax.InstOp
		arg   uint32
		runes string
	}
	seenInst := map[runeInst]bool{}
	var takes [][2]uint64 // ASCII bytes taken, per distinct instruction
	var key []byte
	for pc := range prog.Inst {
		in := &prog.Inst[pc]
		if !consumesRune(in.Op) {
			continue
		}
		key = key[:0]
		for _, r := range in.Rune {
			key = binary.LittleEndian.AppendUint32(key, uint32(r))
		}
		ri := runeInst{in.Op, in.Arg, string(key)}
		if seenInst[ri] {
			continue
		}
		seenInst[ri] = true
		takes = append(takes, asciiTaken(in))
	}
	sigs := map[string]uint8{}
	sig := make([]byte, len(takes))
	for c := 0; c < utf8.RuneSelf; c++ {
		for i, t := range takes {
			sig[i] = byte(t[c>>6] >> (c & 63) & 1)
		}
		k, ok := sigs[string(sig)]
		if !ok {
			k = uint8(len(g.reps))
			sigs[string(sig)] = k
			g.reps = append(g.reps, c)
		}
		g.class[c] = k
	}
	high := uint8(len(g.reps))
	g.reps = append(g.reps, -1)
	for c := utf8.RuneSelf; c < 256; c++ {
		g.class[c] = high
	}
	seen := make([]bool, len(prog.Inst))
	g.first, g.firstMatch = g.closure(uint32(prog.Start), true, nil, seen)
	g.later, g.laterMatch = g.closure(uint32(prog.Start), false, nil, seen)
	return g
}

// Counted repeats make DFAs large: [\s\S]{0,100}?x needs a state per count
// and per partial x. relaxRepeats widens them in place, which only enlarges
// the language (so the gate stays an over-approximation): an upper bound
// above gateMaxRepeat is dropped and a lower bound above gateMaxRepeat is
// lowered to it.
func relaxRepeats(re *syntax.Regexp) {
	if re.Op == syntax.OpRepeat {
		if re.Max > gateMaxRepeat || re.Max < 0 {
			re.Max = -1
		}
		re.Min = min(re.Min, gateMaxRepeat)
	}
	for _, sub := range re.Sub {
		relaxRepeats(sub)
	}
}

// closure appends to set the rune instructions reachable from pc without
// input and reports whether Match is reachable; atStart says whether
// BeginText holds. seen is scratch space of len(prog.Inst).
func (g *gateProg) closure(pc uint32, atStart bool, set []int, seen []bool) ([]int, bool) {
	clear(seen)
	stack := []uint32{pc}
	match := false
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pc] {
			continue
		}
		seen[pc] = true
		in := &g.prog.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, in.Out, in.Arg)
		case syntax.InstNop, syntax.InstCapture:
			stack = append(stack, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&syntax.EmptyBeginText != 0 && !atStart {
				continue
			}
			stack = append(stack, in.Out)
		case syntax.InstMatch:
			match = true
		case syntax.InstFail:
		default: // rune instructions
			set = append(set, int(pc))
		}
	}
	return set, match
}

// consumesRune reports the instructions that consume a rune of input.
func consumesRune(op syntax.InstOp) bool {
	switch op {
	case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	return false
}

// asciiTaken returns the set of ASCII bytes rune instruction in consumes.
func asciiTaken(in *syntax.Inst) [2]uint64 {
	var t [2]uint64
	set := func(lo, hi rune) {
		for c := max(lo, 0); c <= min(hi, utf8.RuneSelf-1); c++ {
			t[c>>6] |= 1 << (c & 63)
		}
	}
	switch {
	case syntax.Flags(in.Arg)&syntax.FoldCase != 0 && in.Op != syntax.InstRuneAny && in.Op != syntax.InstRuneAnyNotNL:
		// Case folding has non-ASCII partners ('k' and U+212A): ask
		// the instruction.
		for c := range utf8.RuneSelf {
			if matchesByte(in, byte(c)) {
				t[c>>6] |= 1 << (c & 63)
			}
		}
	case in.Op == syntax.InstRuneAny:
		set(0, utf8.RuneSelf-1)
	case in.Op == syntax.InstRuneAnyNotNL:
		set(0, '\n'-1)
		set('\n'+1, utf8.RuneSelf-1)
	case len(in.Rune) == 1:
		set(in.Rune[0], in.Rune[0])
	default:
		for i := 0; i+1 < len(in.Rune); i += 2 {
			set(in.Rune[i], in.Rune[i+1])
		}
	}
	return t
}

// matchesByte reports whether rune instruction in consumes the ASCII byte c.
func matchesByte(in *syntax.Inst, c byte) bool {
	switch in.Op {
	case syntax.InstRuneAny:
		return true
	case syntax.InstRuneAnyNotNL:
		return c != '\n'
	}
	return in.MatchRune(rune(c))
}

// matchesNonASCII reports whether rune instruction in may consume some rune
// that is not ASCII (including utf8.RuneError for invalid bytes).
func matchesNonASCII(in *syntax.Inst) bool {
	switch in.Op {
	case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
		return true
	}
	if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
		return true // e.g. 'k' also matches U+212A KELVIN SIGN
	}
	if len(in.Rune) == 1 {
		return in.Rune[0] >= utf8.RuneSelf
	}
	for i := 0; i+1 < len(in.Rune); i += 2 {
		if in.Rune[i+1] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// gateDFA is one worker's lazily built DFA for a gateProg.
type gateDFA struct {
	g      *gateProg
	nclass int
	index  map[string]int16
	states [][]int // rune instructions of each state
	trans  []int16 // state*nclass+class -> state, gateDead or gateUnknown
	// trans2 is trans for positions where no match may start any more.
	trans2 []int16
	accept []bool // a match ends here (or "maybe": too many states)
	seen   []bool // closure scratch
	key    []byte // state key scratch
	maybe  int16  // the accepting state used when states run out
}

func newGateDFA(g *gateProg) *gateDFA {
	d := &gateDFA{g: g, nclass: len(g.reps), index: map[string]int16{}, seen: make([]bool, len(g.prog.Inst))}
	d.add(append([]int(nil), g.first...), g.firstMatch)
	d.maybe = d.add(nil, true)
	return d
}

// mayMatch reports whether the regexp may match somewhere in b starting
// before offset startEnd (regexp.Match semantics, restricted to such
// matches): false is exact, true may be a false positive. Like regexp, it
// reads b rune by rune (an invalid byte is one rune). It also returns how
// many bytes it read, the work a caller may want to account for.
func (d *gateDFA) mayMatch(b []byte, startEnd int) (bool, int) {
	s := int16(0)
	if d.accept[0] {
		return true, 0
	}
	for i := 0; i < len(b); {
		c := b[i]
		cl := int(d.g.class[c])
		if c < utf8.RuneSelf {
			i++
		} else {
			_, n := utf8.DecodeRune(b[i:])
			i += n
		}
		// A match may start at the position after this rune if that is
		// before startEnd.
		tab := d.trans
		if i >= startEnd {
			tab = d.trans2
		}
		t := tab[int(s)*d.nclass+cl]
		if t == gateUnknown {
			t = d.step(s, cl, i < startEnd)
		}
		if t == gateDead {
			return false, i
		}
		if d.accept[t] {
			return true, i
		}
		s = t
	}
	return false, len(b)
}

// step computes and caches the transition of state s on class cl; starts
// says whether a new match may start after it.
func (d *gateDFA) step(s int16, cl int, starts bool) int16 {
	g := d.g
	var next []int
	m := false
	if starts {
		next = append(next, g.later...)
		m = g.laterMatch
	}
	rep := g.reps[cl]
	for _, pc := range d.states[s] {
		in := &g.prog.Inst[pc]
		if rep < 0 && matchesNonASCII(in) || rep >= 0 && matchesByte(in, byte(rep)) {
			var mm bool
			next, mm = g.closure(in.Out, false, next, d.seen)
			m = m || mm
		}
	}
	t := int16(gateDead)
	if len(next) > 0 || m {
		t = d.add(next, m)
	}
	if starts {
		d.trans[int(s)*d.nclass+cl] = t
	} else {
		d.trans2[int(s)*d.nclass+cl] = t
	}
	return t
}

// add returns the state for a set of rune instructions, creating it if new,
// or d.maybe when there are too many states.
func (d *gateDFA) add(set []int, match bool) int16 {
	if match {
		set = set[:0] // the scan stops at an accepting state
	}
	slices.Sort(set)
	set = slices.Compact(set)
	key := d.key[:0]
	if match {
		key = append(key, 'm')
	}
	for _, pc := range set {
		key = strconv.AppendInt(key, int64(pc), 36)
		key = append(key, ',')
	}
	d.key = key
	if i, ok := d.index[string(key)]; ok {
		return i
	}
	if len(d.states) >= gateMaxStates {
		return d.maybe
	}
	i := int16(len(d.states))
	d.index[string(key)] = i
	d.states = append(d.states, set)
	d.accept = append(d.accept, match)
	for range d.nclass {
		d.trans = append(d.trans, gateUnknown)
		d.trans2 = append(d.trans2, gateUnknown)
	}
	return i
}
