package registry

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Shard selects part i (0-based) of n of a repository list, so that n
// machines (e.g. a Kubernetes Indexed Job with completions n, i taken from
// JOB_COMPLETION_INDEX) split an estate without coordination: a repository
// belongs to shard FNV-1a-64(repository name) mod n. All tags of a
// repository land on the same shard, so layers they share are read once.
type Shard struct{ I, N int }

// ParseShard parses "i/n" with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{I: i, N: n}, nil
}

// Contains reports whether the repository of ref belongs to the shard. A
// ref that does not parse is kept (its error is reported by exactly the
// shard that owns its text).
func (s Shard) Contains(ref string, opts ...name.Option) bool {
	if s.N <= 1 {
		return true
	}
	repo := ref
	if r, err := name.ParseReference(ref, opts...); err == nil {
		repo = r.Context().Name()
	} else if r, err := name.NewRepository(ref, opts...); err == nil {
		repo = r.Name()
	}
	h := fnv.New64a()
	h.Write([]byte(repo))
	return h.Sum64()%uint64(s.N) == uint64(s.I)
}

// Select returns the refs of the shard, in their order.
func (s Shard) Select(refs []string, opts ...name.Option) []string {
	var out []string
	for _, r := range refs {
		if s.Contains(r, opts...) {
			out = append(out, r)
		}
	}
	return out
}
