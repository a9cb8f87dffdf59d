package rollback

import (
	"fmt"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/report"
)

// diff lists what reverting from now to then would bring back.
// Categories whose current files could not be read are skipped (a note
// says so already): their contents would all look removed.
func diff(then, now *state) []risk {
	var out []risk
	add := func(cat string, f func() []risk) {
		if !now.failed[cat] {
			out = append(out, f()...)
		}
	}
	add(catAccounts, func() []risk { return diffAccounts(then, now) })
	add(catAuthKeys, func() []risk { return diffAuthorizedKeys(then, now) })
	add(catHostKeys, func() []risk { return diffPrivateKeys(then.hostKeys, now.hostKeys, RuleHostKey) })
	add(catTLSKeys, func() []risk { return diffPrivateKeys(then.tlsKeys, now.tlsKeys, RuleTLSKey) })
	add(catSudoers, func() []risk { return diffSudoers(then, now) })
	add(catGroups, func() []risk { return diffGroups(then, now) })
	add(catPackages, func() []risk { return diffPackages(then, now) })
	return out
}

// account is the login-relevant state of one account.
type account struct {
	exists   bool
	hash     string // from /etc/shadow, or /etc/passwd when it has no shadow entry
	hashPath string
	shell    string
	hasShell bool // a passwd entry exists
}

func (s *state) account(name string) account {
	a := account{}
	if sh, ok := s.shadow[name]; ok {
		a.exists, a.hash, a.hashPath = true, sh.Hash, shadowPath
	}
	if pw, ok := s.passwd[name]; ok {
		a.exists, a.shell, a.hasShell = true, pw.Shell, true
		if a.hashPath == "" && pw.Passwd != "x" {
			a.hash, a.hashPath = pw.Passwd, passwdPath
		}
	}
	return a
}

// canLogIn: a usable hash and (when known) a login shell.
func (a account) canLogIn() bool {
	return a.exists && a.hashPath != "" && ClassifyHash(a.hash) == HashUsable && !(a.hasShell && nonLoginShell(a.shell))
}

// whyNot says, for a sentence, why an account cannot log in now.
func (a account) whyNot() string {
	if !a.exists {
		return "it does not exist now"
	}
	if a.hashPath != "" {
		switch ClassifyHash(a.hash) {
		case HashLocked:
			return "it is locked now (!)"
		case HashDisabled:
			if strings.HasPrefix(a.hash, "*") {
				return "it is disabled now (*)"
			}
			return "it has no usable password hash now"
		}
	} else {
		return "it has no password entry now"
	}
	if a.hasShell && nonLoginShell(a.shell) {
		return fmt.Sprintf("its shell is %s now", safeText(a.shell, 64))
	}
	return "it cannot log in with a password now"
}

// diffAccounts: accounts that cannot log in now but could in the view
// (rollback re-enables them), and usable hashes that differ (rollback
// restores the old password).
func diffAccounts(then, now *state) []risk {
	var out []risk
	for _, name := range accountNames(then) {
		old, cur := then.account(name), now.account(name)
		if !old.canLogIn() {
			continue
		}
		if cur.hashPath != "" && ClassifyHash(cur.hash) == HashEmpty {
			continue // passwordless now: reverting restricts rather than re-enables
		}
		scheme := hashScheme(old.hash)
		meta := map[string]string{"account": name, "hash_scheme": scheme}
		switch {
		case !cur.canLogIn():
			why := cur.whyNot()
			extra := ""
			if cur.exists && cur.hasShell && nonLoginShell(cur.shell) && old.hasShell {
				extra = fmt.Sprintf("login shell %s and ", safeText(old.shell, 64))
			}
			path := old.hashPath
			if cur.exists && ClassifyHash(cur.hash) == HashUsable && cur.hashPath != "" {
				path = passwdPath // only the shell changed
			}
			out = append(out, risk{
				rule: RuleAccountUnlocked, severity: report.SeverityHigh, secret: old.hash,
				preview: hashPreview(old.hash), path: path, meta: meta,
				describe: func(where, kind string) string {
					return fmt.Sprintf("Reverting to %s re-enables account %s: %s but has %sa usable %s hash in the %s.",
						where, safeText(name, 64), why, extra, scheme, kind)
				},
			})
		case cur.hash != old.hash:
			out = append(out, risk{
				rule: RulePasswordRestored, severity: report.SeverityHigh, secret: old.hash,
				preview: hashPreview(old.hash), path: old.hashPath, meta: meta,
				describe: func(where, kind string) string {
					return fmt.Sprintf("Reverting to %s restores the old password of account %s: its %s hash in the %s differs from the current one.",
						where, safeText(name, 64), scheme, kind)
				},
			})
		}
	}
	return out
}

// accountNames lists the accounts of a state, sorted.
func accountNames(s *state) []string {
	var names []string
	for n := range s.shadow {
		names = append(names, n)
	}
	for n := range s.passwd {
		if _, ok := s.shadow[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// diffAuthorizedKeys: keys authorized for an account in the view but not now.
func diffAuthorizedKeys(then, now *state) []risk {
	var out []risk
	users := make([]string, 0, len(then.authKeys))
	for u := range then.authKeys {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, u := range users {
		blobs := make([]string, 0, len(then.authKeys[u]))
		for b := range then.authKeys[u] {
			blobs = append(blobs, b)
		}
		slices.Sort(blobs)
		for _, b := range blobs {
			if _, ok := now.authKeys[u][b]; ok {
				continue
			}
			k := then.authKeys[u][b]
			user, kfp, typ, p := u, k.key.Fingerprint, k.key.Type, k.path
			out = append(out, risk{
				rule: RuleAuthorizedKey, severity: report.SeverityHigh, secret: b,
				keyFP: kfp, preview: keyTypePreview(typ, kfp), path: p,
				meta: map[string]string{"account": safeText(u, 64), "key_type": typ},
				describe: func(where, kind string) string {
					return fmt.Sprintf("Reverting to %s restores SSH access to account %s for the %s key %s (in %s), which is no longer authorized now.",
						where, safeText(user, 64), typ, kfp, safeText(p, 200))
				},
			})
		}
	}
	return out
}

// diffPrivateKeys: private keys in the view that the current state does
// not have (rotated or removed); rollback restores them.
func diffPrivateKeys(then, now []keyFile, rule string) []risk {
	have := map[string]bool{}
	curPaths := map[string]bool{}
	for _, k := range now {
		have[string(k.key.Block)] = true
		curPaths[k.path] = true
	}
	var out []risk
	for _, k := range then {
		if have[string(k.key.Block)] {
			continue
		}
		what := "SSH host key"
		sev := report.SeverityMedium
		if rule == RuleTLSKey {
			what = "TLS private key"
		}
		typ := k.key.Info.Type
		if typ == "" {
			typ = "unparsed"
		}
		change := "rotated since: the current key differs"
		if !curPaths[k.path] {
			change = "removed since: the current state has no key there"
		}
		p, kfp := k.path, k.key.Info.KeyFingerprint
		fpText := ""
		if kfp != "" {
			fpText = " " + kfp
		}
		meta := map[string]string{"key_type": typ}
		if k.key.Info.Encrypted {
			meta["encrypted"] = "true"
			sev = report.SeverityLow
		}
		out = append(out, risk{
			rule: rule, severity: sev, secret: string(k.key.Block), keyFP: kfp,
			preview: "-----BEGIN " + k.key.Label + "-----", path: p, meta: meta,
			describe: func(where, kind string) string {
				return fmt.Sprintf("Reverting to %s restores the %s %s%s in %s, %s.",
					where, typ, what, fpText, safeText(p, 200), change)
			},
		})
	}
	return out
}

// diffSudoers: grant lines present in the view but not now.
func diffSudoers(then, now *state) []risk {
	texts := make([]string, 0, len(then.sudo))
	for t := range then.sudo {
		texts = append(texts, t)
	}
	slices.Sort(texts)
	var out []risk
	for _, t := range texts {
		if _, ok := now.sudo[t]; ok {
			continue
		}
		s := then.sudo[t]
		who, p := safeText(s.rule.Principal, 64), s.path
		out = append(out, risk{
			rule: RulePrivilege, severity: report.SeverityHigh, secret: "sudoers:" + t,
			preview: who + " …(" + itoa(len(t)) + " chars)", path: p,
			meta: map[string]string{"principal": who, "source": "sudoers"},
			describe: func(where, kind string) string {
				return fmt.Sprintf("Reverting to %s restores a sudoers rule for %s (%s line %d) that is gone now.",
					where, who, safeText(p, 200), s.rule.Line)
			},
		})
	}
	return out
}

// diffGroups: members of sudo/wheel/admin in the view but not now.
func diffGroups(then, now *state) []risk {
	var out []risk
	for _, gname := range adminGroups {
		g, ok := then.groups[gname]
		if !ok {
			continue
		}
		cur := now.groups[gname].Members
		for _, m := range g.Members {
			if slices.Contains(cur, m) {
				continue
			}
			member, group := m, gname
			out = append(out, risk{
				rule: RulePrivilege, severity: report.SeverityHigh, secret: "group:" + gname + ":" + m,
				preview: gname + ": +" + safeText(m, 64), path: groupPath,
				meta: map[string]string{"account": m, "group": gname, "source": "group"},
				describe: func(where, kind string) string {
					return fmt.Sprintf("Reverting to %s makes %s a member of group %s again (administrator rights); %s is not a member now.",
						where, safeText(member, 64), group, safeText(member, 64))
				},
			})
		}
	}
	return out
}

// diffPackages: packages installed in both whose version in the view is
// older than now: rollback undoes their updates.
func diffPackages(then, now *state) []risk {
	keys := make([]string, 0, len(then.packages))
	for k := range then.packages {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []risk
	for _, k := range keys {
		old := then.packages[k]
		cur, ok := now.packages[k]
		if !ok {
			continue
		}
		c, err := CompareDebVersions(old.Version, cur.Version)
		if err != nil || c >= 0 {
			continue
		}
		name, ov, nv := safeText(old.Name, 128), safeText(old.Version, 128), safeText(cur.Version, 128)
		meta := map[string]string{"package": name, "old_version": ov, "new_version": nv}
		if old.Arch != "" {
			meta["architecture"] = safeText(old.Arch, 32)
		}
		out = append(out, risk{
			rule: RulePackageDowngrade, severity: report.SeverityMedium, secret: old.Name + "=" + old.Version,
			preview: name + " " + ov + " < " + nv, path: dpkgStatusPath, meta: meta,
			describe: func(where, kind string) string {
				return fmt.Sprintf("Reverting to %s downgrades package %s from %s to %s, undoing the fixes of every version in between.",
					where, name, nv, ov)
			},
		})
	}
	return out
}

// safeText makes guest-controlled text fit for a sentence: printable ASCII
// only (others become '?') and at most n bytes.
func safeText(s string, n int) string {
	b := []byte(s)
	if len(b) > n {
		b = append(b[:n:n], "…"...)
	}
	for i, c := range b {
		if i >= n {
			break
		}
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
