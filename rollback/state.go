package rollback

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/pkgdb"
)

// FS is the read-only access to a guest filesystem that rollback needs.
// *guestfs.Map provides it through MapFS.
type FS interface {
	// ReadFile reads a regular file, following symlinks inside the guest.
	ReadFile(path string) ([]byte, error)
	// ReadDir lists a directory (without "." and "..").
	ReadDir(path string) ([]DirEntry, error)
}

// DirEntry is one directory entry.
type DirEntry struct {
	Name string
	Dir  bool // a directory (symlinks are not, though they may lead to one)
}

// MapFS adapts a guestfs.Map (any of its filesystems that can be read by
// path) to FS.
func MapFS(m *guestfs.Map) FS { return mapFS{m} }

type mapFS struct{ m *guestfs.Map }

func (f mapFS) ReadFile(p string) ([]byte, error) { return f.m.ReadFile(p) }

func (f mapFS) ReadDir(p string) ([]DirEntry, error) {
	ents, err := f.m.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, 0, len(ents))
	for _, e := range ents {
		out = append(out, DirEntry{Name: e.Name(), Dir: e.IsDir()})
	}
	return out, nil
}

// isNotExist reports errors that only mean the path is not there.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, guestfs.ErrNoFilesystem)
}

// Bounds on what one state reads.
const (
	maxDirEntries    = 4096 // per directory listed (/home, /etc/ssh, key dirs, sudoers.d)
	maxKeyUsers      = 4096 // accounts whose authorized_keys files are looked up
	maxIncludes      = 256  // sudoers/sshd_config files followed
	maxIncludeDepth  = 8
	maxKeyFileBytes  = 1 << 20
	sshdConfigPath   = "/etc/ssh/sshd_config"
	sudoersPath      = "/etc/sudoers"
	dpkgStatusPath   = "/var/lib/dpkg/status"
	shadowPath       = "/etc/shadow"
	passwdPath       = "/etc/passwd"
	groupPath        = "/etc/group"
	sshHostKeyDir    = "/etc/ssh"
	defaultRootHome  = "/root"
	defaultHomesRoot = "/home"
)

// tlsKeyDirs are where distributions keep TLS private keys.
var tlsKeyDirs = []string{"/etc/ssl/private", "/etc/pki/tls/private"}

// rpmDBDirs hold RPM databases (not read: see the note).
var rpmDBDirs = []string{"/var/lib/rpm", "/usr/lib/sysimage/rpm"}

// keyAt is an authorized key and the file that authorizes it.
type keyAt struct {
	key  AuthorizedKey
	path string
}

// keyFile is a private key found in a key file.
type keyFile struct {
	path string
	key  privateKeyBlock
}

// sudoAt is a sudoers rule and its file.
type sudoAt struct {
	rule SudoRule
	path string
}

// state is what one view's filesystem says about credentials.
type state struct {
	shadow   map[string]ShadowEntry
	passwd   map[string]PasswdEntry
	groups   map[string]GroupEntry
	authKeys map[string]map[string]keyAt // account -> blob -> where
	hostKeys []keyFile
	tlsKeys  []keyFile
	sudo     map[string]sudoAt // normalised rule text -> where
	packages map[string]pkgdb.DpkgPackage
	rpmDB    string // an RPM database directory that is present
	notes    []string
	// failed holds the categories (catAccounts, ...) for which a file
	// exists but could not be read: comparing them would report
	// everything as removed, so diff skips them.
	failed map[string]bool
}

// Categories of files, for state.failed.
const (
	catAccounts = "accounts"
	catGroups   = "groups"
	catAuthKeys = "authorized_keys"
	catHostKeys = "host keys"
	catTLSKeys  = "TLS keys"
	catSudoers  = "sudoers"
	catPackages = "packages"
)

// stateReader reads one state, collecting notes about unreadable files.
type stateReader struct {
	ctx  context.Context
	cat  string // category being read, for state.failed
	fs   FS
	st   *state
	read map[string]bool // files already followed (include cycles)
}

func (r *stateReader) note(format string, args ...any) {
	if len(r.st.notes) < 32 {
		r.st.notes = append(r.st.notes, fmt.Sprintf(format, args...))
	}
}

// file reads p; a missing file is nil without a note.
func (r *stateReader) file(p string) []byte {
	b, err := r.fs.ReadFile(p)
	if err != nil {
		if !isNotExist(err) {
			r.note("cannot read %s: %v", p, err)
			r.st.failed[r.cat] = true
		}
		return nil
	}
	return b
}

// dir lists p, sorted by name; a missing directory is nil without a note.
func (r *stateReader) dir(p string) []DirEntry {
	ents, err := r.fs.ReadDir(p)
	if err != nil {
		if !isNotExist(err) {
			r.note("cannot list %s: %v", p, err)
			r.st.failed[r.cat] = true
		}
		return nil
	}
	if len(ents) > maxDirEntries {
		r.note("%s: %d entries, only the first %d read", p, len(ents), maxDirEntries)
		ents = ents[:maxDirEntries]
	}
	slices.SortFunc(ents, func(a, b DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return ents
}

// readState reads every credential-bearing file rollback compares.
func readState(ctx context.Context, fsys FS) (*state, error) {
	st := &state{
		shadow: map[string]ShadowEntry{}, passwd: map[string]PasswdEntry{}, groups: map[string]GroupEntry{},
		authKeys: map[string]map[string]keyAt{}, sudo: map[string]sudoAt{}, packages: map[string]pkgdb.DpkgPackage{},
		failed: map[string]bool{},
	}
	r := &stateReader{ctx: ctx, fs: fsys, st: st, read: map[string]bool{}, cat: catAccounts}
	for _, e := range ParseShadow(r.file(shadowPath)) {
		st.shadow[e.Name] = e
	}
	passwd := ParsePasswd(r.file(passwdPath))
	for _, e := range passwd {
		st.passwd[e.Name] = e
	}
	r.cat = catGroups
	for _, g := range ParseGroup(r.file(groupPath)) {
		st.groups[g.Name] = g
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.cat = catAuthKeys
	if err := r.readAuthorizedKeys(passwd); err != nil {
		return nil, err
	}
	r.cat = catHostKeys
	st.hostKeys = r.readKeyDir(sshHostKeyDir, func(name string) bool {
		return strings.HasPrefix(name, "ssh_host_") && strings.HasSuffix(name, "_key")
	})
	r.cat = catTLSKeys
	for _, d := range tlsKeyDirs {
		st.tlsKeys = append(st.tlsKeys, r.readKeyDir(d, func(string) bool { return true })...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.cat = catSudoers
	r.readSudoers(sudoersPath, 0)
	r.cat = catPackages
	for _, p := range pkgdb.ParseDpkgStatus(r.file(dpkgStatusPath)) {
		if _, dup := st.packages[p.Key()]; !dup {
			st.packages[p.Key()] = p
		}
	}
	r.cat = "rpm"
	for _, d := range rpmDBDirs {
		if len(r.dir(d)) > 0 {
			st.rpmDB = d
			break
		}
	}
	return st, ctx.Err()
}

// keyUser is an account whose authorized_keys files are looked up.
type keyUser struct{ name, uid, home string }

// readAuthorizedKeys collects each account's effective authorized keys:
// the AuthorizedKeysFile patterns of this state's sshd_config (default
// .ssh/authorized_keys and .ssh/authorized_keys2), expanded for every
// account of /etc/passwd, root, and every directory under /home.
func (r *stateReader) readAuthorizedKeys(passwd []PasswdEntry) error {
	var cfg sshdKeyFiles
	r.readSSHDConfig(&cfg, sshdConfigPath, false, 0)
	patterns := cfg.patterns()
	if len(patterns) > 16 {
		r.note("sshd_config: %d AuthorizedKeysFile patterns, only the first 16 followed", len(patterns))
		patterns = patterns[:16]
	}
	var users []keyUser
	homes := map[string]bool{}
	for _, e := range passwd {
		users = append(users, keyUser{e.Name, e.UID, e.Home})
		homes[path.Clean("/"+e.Home)] = true
	}
	if _, ok := r.st.passwd["root"]; !ok {
		users = append(users, keyUser{"root", "0", defaultRootHome})
		homes[defaultRootHome] = true
	}
	for _, e := range r.dir(defaultHomesRoot) {
		h := defaultHomesRoot + "/" + e.Name
		if !homes[h] {
			users = append(users, keyUser{name: e.Name, home: h})
			homes[h] = true
		}
	}
	if len(users) > maxKeyUsers {
		r.note("%d accounts, authorized_keys read for the first %d", len(users), maxKeyUsers)
		users = users[:maxKeyUsers]
	}
	cache := map[string][]AuthorizedKey{}
	for _, u := range users {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		for _, pat := range patterns {
			p, ok := expandKeyFile(pat, u.name, u.uid, u.home)
			if !ok {
				continue
			}
			p = path.Clean(p)
			keys, done := cache[p]
			if !done {
				keys = ParseAuthorizedKeys(r.file(p))
				cache[p] = keys
			}
			for _, k := range keys {
				m := r.st.authKeys[u.name]
				if m == nil {
					m = map[string]keyAt{}
					r.st.authKeys[u.name] = m
				}
				if _, dup := m[string(k.Blob)]; !dup {
					m[string(k.Blob)] = keyAt{key: k, path: p}
				}
			}
		}
	}
	return nil
}

// readSSHDConfig reads one sshd_config file and its Includes (relative
// paths are relative to /etc/ssh; glob patterns are expanded in their
// directory, as sshd does).
func (r *stateReader) readSSHDConfig(cfg *sshdKeyFiles, p string, inMatch bool, depth int) {
	if depth > maxIncludeDepth || len(r.read) >= maxIncludes || r.read["sshd:"+p] {
		return
	}
	r.read["sshd:"+p] = true
	cfg.parse(r.file(p), inMatch, func(pattern string, inMatch bool) {
		if !strings.HasPrefix(pattern, "/") {
			pattern = sshHostKeyDir + "/" + pattern
		}
		for _, f := range r.glob(pattern) {
			r.readSSHDConfig(cfg, f, inMatch, depth+1)
		}
	})
}

// glob expands a pattern whose last component may hold wildcards.
func (r *stateReader) glob(pattern string) []string {
	pattern = path.Clean(pattern)
	dir, base := path.Split(pattern)
	if !strings.ContainsAny(base, "*?[") {
		return []string{pattern}
	}
	var out []string
	for _, e := range r.dir(path.Clean(dir)) {
		if ok, _ := path.Match(base, e.Name); ok && !e.Dir {
			out = append(out, path.Clean(dir)+"/"+e.Name)
		}
	}
	return out
}

// readSudoers reads a sudoers file and follows its include directives.
func (r *stateReader) readSudoers(p string, depth int) {
	if depth > maxIncludeDepth || len(r.read) >= maxIncludes || r.read["sudo:"+p] {
		return
	}
	r.read["sudo:"+p] = true
	rules, incs := ParseSudoers(r.file(p))
	for _, rule := range rules {
		if _, dup := r.st.sudo[rule.Text]; !dup {
			r.st.sudo[rule.Text] = sudoAt{rule: rule, path: p}
		}
	}
	for _, inc := range incs {
		target := inc.Path
		if !strings.HasPrefix(target, "/") {
			target = path.Dir(p) + "/" + target
		}
		target = path.Clean(target)
		if !inc.Dir {
			r.readSudoers(target, depth+1)
			continue
		}
		for _, e := range r.dir(target) {
			if !e.Dir && sudoersDirEntryUsed(e.Name) {
				r.readSudoers(target+"/"+e.Name, depth+1)
			}
		}
	}
}

// readKeyDir reads the private keys of the files of dir that want accepts.
func (r *stateReader) readKeyDir(dir string, want func(name string) bool) []keyFile {
	var out []keyFile
	for _, e := range r.dir(dir) {
		if e.Dir || !want(e.Name) {
			continue
		}
		p := dir + "/" + e.Name
		b := r.file(p)
		if len(b) > maxKeyFileBytes {
			continue
		}
		for _, k := range privateKeyBlocks(b) {
			out = append(out, keyFile{path: p, key: k})
		}
	}
	return out
}
