package scanner

import "sort"

// span is a half-open interval [start, end).
type span struct{ start, end int64 }

// spanSet is a set of disjoint, sorted, non-adjacent spans.
type spanSet struct{ s []span }

// missing returns the parts of [start,end) not in the set.
func (ss *spanSet) missing(start, end int64) []span {
	var out []span
	i := sort.Search(len(ss.s), func(i int) bool { return ss.s[i].end > start })
	cur := start
	for ; i < len(ss.s) && ss.s[i].start < end; i++ {
		if ss.s[i].start > cur {
			out = append(out, span{cur, ss.s[i].start})
		}
		if ss.s[i].end > cur {
			cur = ss.s[i].end
		}
	}
	if cur < end {
		out = append(out, span{cur, end})
	}
	return out
}

// add inserts [start,end), merging with neighbours.
func (ss *spanSet) add(start, end int64) {
	if start >= end {
		return
	}
	i := sort.Search(len(ss.s), func(i int) bool { return ss.s[i].end >= start })
	j := i
	for j < len(ss.s) && ss.s[j].start <= end {
		start = min(start, ss.s[j].start)
		end = max(end, ss.s[j].end)
		j++
	}
	ss.s = append(ss.s[:i], append([]span{{start, end}}, ss.s[j:]...)...)
}

// appendRange appends [start,end) to a sorted list of guest ranges, merging
// with the last one when they touch.
func appendRange(rs []span, start, end int64) []span {
	if start >= end {
		return rs
	}
	if n := len(rs); n > 0 && rs[n-1].end >= start {
		rs[n-1].end = max(rs[n-1].end, end)
		return rs
	}
	return append(rs, span{start, end})
}
