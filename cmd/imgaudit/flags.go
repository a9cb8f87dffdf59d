package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

var errHelp = errors.New("help requested")

// flagSet is a command's flags and its --help text.
type flagSet struct {
	*flag.FlagSet
	help func()
}

// newFlagSet makes a flagSet whose --help prints a synopsis, a description
// and the flags (printDefaults) to out, standard output. The flag package
// prints nothing itself: parseInterspersed returns a parse error as one
// usage error, which run prints with a hint.
func newFlagSet(name, synopsis, description string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, help: func() {
		fmt.Fprintf(out, "Usage: imgaudit %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(description))
		printDefaults(out, fs)
	}}
}

// flagName writes a flag as users type it: -o for one letter, --fail-on
// for words.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// printDefaults replaces flag.PrintDefaults: flags are shown with the
// dashes users type, aliases sharing one variable on one line ("-o,
// --output FILE"), descriptions aligned in one column and wrapped.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	type row struct{ left, usage string }
	var rows []row
	var seen []flag.Value
	var all []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f) })
	for _, f := range all {
		if slices.Contains(seen, f.Value) {
			continue
		}
		seen = append(seen, f.Value)
		names := []string{}
		var arg, usage string
		for _, g := range all {
			if g.Value == f.Value {
				names = append(names, g.Name)
				if a, u := flag.UnquoteUsage(g); !strings.HasPrefix(u, "same as ") {
					arg, usage = argName(a), u
				}
			}
		}
		// Short names first: "-o, --output".
		slices.SortStableFunc(names, func(a, b string) int { return len(a) - len(b) })
		for i, n := range names {
			names[i] = flagName(n)
		}
		left := strings.Join(names, ", ")
		if arg != "" {
			left += " " + arg
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			usage += fmt.Sprintf(" (default %s)", d)
		}
		rows = append(rows, row{left, usage})
	}
	const maxLeft, width = 28, 80
	col := 0
	for _, r := range rows {
		if l := len(r.left); l <= maxLeft {
			col = max(col, l)
		}
	}
	indent := strings.Repeat(" ", 2+col+2)
	for _, r := range rows {
		line := "  " + r.left
		if len(r.left) > col {
			fmt.Fprintln(w, line)
			line = indent
		} else {
			line += strings.Repeat(" ", col-len(r.left)+2)
		}
		n := len(line)
		for i, word := range strings.Fields(r.usage) {
			if i > 0 && n+1+len(word) > width {
				fmt.Fprintln(w, line)
				line, n = indent+word, len(indent)+len(word)
				continue
			}
			if i > 0 {
				line += " "
				n++
			}
			line += word
			n += len(word)
		}
		fmt.Fprintln(w, line)
	}
}

// argName turns the flag package's guess of an argument's name from its
// type into a placeholder.
func argName(a string) string {
	switch a {
	case "string", "value":
		return "VALUE"
	case "int", "uint", "int64", "uint64", "float":
		return "N"
	case "duration":
		return "DURATION"
	}
	return a
}

// flagError rewrites the flag package's parse errors with the dashes users
// type ("flag provided but not defined: -frob" becomes "unknown flag
// --frob").
func flagError(err error) error {
	msg := err.Error()
	for _, p := range []struct{ from, to string }{
		{"flag provided but not defined: -", "unknown flag "},
		{"flag needs an argument: -", "flag needs an argument: "},
		{" for flag -", " for flag "},
		{"bad flag syntax: ", "bad flag syntax: "},
	} {
		if i := strings.Index(msg, p.from); i >= 0 {
			rest := msg[i+len(p.from):]
			name, tail, _ := strings.Cut(rest, ":")
			if p.from != "bad flag syntax: " {
				name = flagName(strings.TrimLeft(name, "-"))
			}
			msg = msg[:i] + p.to + name
			if tail != "" {
				msg += ":" + tail
			}
			break
		}
	}
	return usageError{msg}
}

// parseInterspersed parses flags that may appear before, between or after
// positional arguments ("imgaudit scan img.qcow2 --fail-on high"). A "--"
// ends flag parsing.
func parseInterspersed(fs *flagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.help()
				return nil, errHelp
			}
			return nil, flagError(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// stringList is a repeatable flag that also splits on commas.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

// daysFlag is a duration flag that also takes whole days ("30d"), as
// retention periods are said; Go's durations stop at hours.
type daysFlag time.Duration

const day = 24 * time.Hour

func (d *daysFlag) String() string {
	if v := time.Duration(*d); v != 0 && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	return time.Duration(*d).String()
}

func (d *daysFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days uint64
		days, err = strconv.ParseUint(n, 10, 16)
		v = time.Duration(days) * day
	}
	if err != nil {
		return fmt.Errorf("%q: want days (30d) or a duration (720h, 90m)", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*d = daysFlag(v)
	return nil
}
