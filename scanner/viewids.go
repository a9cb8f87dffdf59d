package scanner

import (
	"path/filepath"
	"strings"
)

// disambiguateViewIDs makes view IDs unique within a report. Formats name
// views after the image file ("disk.qcow2#current"), so two disk.qcow2 in
// different directories gave the same IDs. The targets whose IDs collide
// get the shortest run of parent directories that tells them apart
// ("a/disk.qcow2#current", "b/disk.qcow2#current"); IDs that were unique
// stay as they were, since --baseline and extract --view use them.
func disambiguateViewIDs(ts []*target) {
	owners := map[string]int{} // view ID -> number of targets having it
	for _, t := range ts {
		for _, id := range t.viewIDs() {
			owners[id]++
		}
	}
	var clash []*target
	for _, t := range ts {
		for _, id := range t.viewIDs() {
			if owners[id] > 1 {
				clash = append(clash, t)
				break
			}
		}
	}
	if len(clash) == 0 {
		return
	}
	depth := 0
	for _, t := range clash {
		depth = max(depth, len(pathParts(t.path)))
	}
	for k := 1; k <= depth; k++ {
		seen := map[string]bool{}
		for _, t := range ts {
			if !contains(clash, t) {
				for _, id := range t.viewIDs() {
					seen[id] = true
				}
			}
		}
		unique := true
		for _, t := range clash {
			for _, id := range t.viewIDs() {
				n := prefixedID(t.path, id, k)
				if seen[n] {
					unique = false
				}
				seen[n] = true
			}
		}
		if !unique {
			continue
		}
		for _, t := range clash {
			for i := range t.img.Views {
				t.img.Views[i].ID = prefixedID(t.path, t.img.Views[i].ID, k)
			}
		}
		return
	}
	// The same file named twice: nothing tells the two apart.
}

func (t *target) viewIDs() []string {
	if t.img == nil {
		return nil
	}
	ids := make([]string, len(t.img.Views))
	for i, v := range t.img.Views {
		ids[i] = v.ID
	}
	return ids
}

func contains(ts []*target, t *target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// pathParts splits a target's absolute path into its components.
func pathParts(p string) []string {
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return strings.Split(strings.Trim(filepath.ToSlash(p), "/"), "/")
}

// prefixedID names a view of the target at path with k more components of
// that path: an ID that starts with the file's name ("disk.qcow2#...")
// gets k parent directories in front of the name; any other ID (the disks
// of an OVA are named after their own files) gets the file's name and k-1
// parent directories.
func prefixedID(path, id string, k int) string {
	parts := pathParts(path)
	base := parts[len(parts)-1]
	if strings.HasPrefix(id, base+"#") {
		n := min(k+1, len(parts))
		return strings.Join(parts[len(parts)-n:], "/") + id[len(base):]
	}
	n := min(k, len(parts))
	return strings.Join(parts[len(parts)-n:], "/") + "/" + id
}
