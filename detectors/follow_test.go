package detectors

import (
	"math/rand/v2"
	"regexp"
	"regexp/syntax"
	"strings"
	"testing"
	"unicode/utf8"
)

// builtinGates returns the follow gates of the built-in rules with their DFAs.
func builtinGates(tb testing.TB) (res []*regexp.Regexp, dfas []*gateDFA) {
	tb.Helper()
	for _, r := range Builtin() {
		if r.Follow == "" {
			continue
		}
		g := newGateProg(r.Follow)
		if g == nil {
			tb.Fatalf("rule %s: follow %q got no DFA", r.ID, r.Follow)
		}
		res = append(res, regexp.MustCompile(r.Follow))
		dfas = append(dfas, newGateDFA(g))
	}
	return res, dfas
}

// TestGateDFANeverMissesAMatch checks the DFA against regexp on inputs built
// to get close to each gate: wherever the regexp matches, the DFA must say
// "may match"; and the DFA must reject most non-matching inputs, or it is
// useless.
func TestGateDFANeverMissesAMatch(t *testing.T) {
	res, dfas := builtinGates(t)
	extra := []string{"", "x", "\n", "=", " =", "\t:", "\"", "'", "<Value>", " login ", "password ",
		"PASSWORD", "_SECRET", " -u ", "--user", "--password=", " -p", "dump", "ADMIN", "key", ".eyJ",
		"@", ":", "/", "\xe2\x84\xaa", "\xc5\xbf", "\xff", "\x00"}
	for i, re := range res {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		// Pieces: the gate's own literals and classes, sampled as bytes.
		alphabet := []string{"a", "Z", "0", "9", "f", "g", "h", "+", "/", "%", "_", "-", ".", " ", "\t"}
		alphabet = append(alphabet, extra...)
		for _, lit := range strings.FieldsFunc(re.String(), func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' || r == '.') }) {
			alphabet = append(alphabet, lit, strings.ToLower(lit))
		}
		var matched, rejected, total int
		for range 5000 {
			var sb strings.Builder
			for n := rng.IntN(24); n > 0; n-- {
				p := alphabet[rng.IntN(len(alphabet))]
				for k := rng.IntN(3); k >= 0; k-- {
					sb.WriteString(p)
				}
				if rng.IntN(6) == 0 {
					sb.WriteString(strings.Repeat("abc123", rng.IntN(12)))
				}
			}
			in := []byte(sb.String())
			m, dm := re.Match(in), first(dfas[i].mayMatch(in, len(in)))
			if m && !dm {
				t.Fatalf("gate %q: regexp matches %q, DFA says no", re, in)
			}
			total++
			if m {
				matched++
			}
			if !dm || !isASCII(in) {
				rejected++ // non-ASCII input may stop the DFA with "maybe"
			}
		}
		if matched == total || rejected == 0 {
			t.Errorf("gate %q: %d/%d matched, DFA rejected %d: test inputs do not exercise it", re, matched, total, rejected)
		}
		if dm := total - rejected; dm > 2*matched+total/10 {
			t.Errorf("gate %q: DFA passes %d inputs, regexp matches %d: DFA too loose", re, dm, matched)
		}
	}
}

// FuzzGateDFA: for every built-in follow gate and main regexp, a regexp
// match starting before startEnd implies a DFA "may match" (startEnd < 0:
// anywhere).
func FuzzGateDFA(f *testing.F) {
	f.Add([]byte(" = hunter2"), -1)
	f.Add([]byte("user:p4ss@host"), 3)
	f.Add([]byte(" \t MY_API_KEY=abc"), -1)
	f.Add([]byte("\xe2\x84\xaa\xff\x00 -p"), 2)
	f.Add([]byte("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"), 10)
	f.Add([]byte("root:$6$salt$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./abcdefghijklmnopqrstuv:19000:0:99999:7:::"), 5)
	var res []*regexp.Regexp
	var progs []*gateProg
	for _, r := range Builtin() {
		for _, ex := range []string{r.Follow, r.Regex} {
			if ex != "" {
				res = append(res, regexp.MustCompile(ex))
				progs = append(progs, newGateProg(ex))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, startEnd int) {
		if startEnd < 0 || startEnd > len(in) {
			startEnd = len(in)
		}
		for i, re := range res {
			m := re.FindIndex(in)
			if m == nil || m[0] >= startEnd {
				// The leftmost match starts too late; a later one does too.
				continue
			}
			if ok, _ := newGateDFA(progs[i]).mayMatch(in, startEnd); !ok {
				t.Fatalf("gate %q: regexp matches %q at %v, DFA (startEnd %d) says no", re, in, m, startEnd)
			}
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// TestASCIITaken holds asciiTaken's shortcut to what each rune instruction
// of the built-in rules' regexps (and some edge cases) says byte by byte.
func TestASCIITaken(t *testing.T) {
	exprs := []string{`(?i)k`, `(?i)s`, `(?i)[a-z]`, `(?i)[^k]`, `.`, `(?s).`, `[^a]`, `\x{212A}`, `[\x00-\x{10FFFF}]`, `[~-\x{80}]`, `\d`, `(?i)\x{17F}`}
	for _, r := range Builtin() {
		exprs = append(exprs, r.Follow, r.Regex)
	}
	for _, expr := range exprs {
		if expr == "" {
			continue
		}
		re, err := syntax.Parse(expr, syntax.Perl)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		prog, err := syntax.Compile(re.Simplify())
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		for pc := range prog.Inst {
			in := &prog.Inst[pc]
			if !consumesRune(in.Op) {
				continue
			}
			got := asciiTaken(in)
			for c := range utf8.RuneSelf {
				if want := matchesByte(in, byte(c)); got[c>>6]>>(c&63)&1 == 1 != want {
					t.Errorf("%q: instruction %d (%v): byte %#x: asciiTaken says %v, the instruction %v", expr, pc, in, c, !want, want)
				}
			}
		}
	}
}

func first[A, B any](a A, _ B) A { return a }
