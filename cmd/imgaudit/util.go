package main

import (
	"maps"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/report"
)

func humanBytes(n int64) string { return report.HumanBytes(n) }

func joinAttrs(m map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, " ")
}
