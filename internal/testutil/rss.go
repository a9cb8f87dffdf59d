package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSS reads this process's peak resident set size (VmHWM in
// /proc/self/status), in bytes: what a scan run in a child process took at
// most, measured by the child itself (the rusage a parent reads of a child
// it forked counts the parent's own memory at the fork).
func PeakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
