package downgrade

import (
	"maps"

	"github.com/imgaudit/imgaudit/report"
)

//go:generate go run ../internal/cmd/knownpublicgen known_public.toml knownpublic_gen.go

// KnownSource is software or a standard that publishes private keys: test
// keys compiled into a program or a library, a kernel's self-test
// vectors, a standard's examples (known_public.toml names them;
// knownpublic_gen.go holds what its generator found).
type KnownSource struct {
	ID          string
	Description string
	// From says where the generator found the keys: "openssl
	// 3.0.17-1~deb12u2: /usr/bin/openssl", or a standard's sections.
	From string
	Keys []KnownKey
}

// KnownKey is one published private key: the fingerprint of the secret
// value as a rule reports it, and for keys that parse the public key's
// fingerprint, which every encoding of the key shares.
type KnownKey struct {
	Rule           string
	Fingerprint    string
	KeyFingerprint string
}

// KnownPublic looks findings up among the published keys.
type KnownPublic struct {
	sources       []KnownSource
	byFingerprint map[string]int // → index in sources
	byKey         map[string]int
}

// NewKnownPublic returns the built-in list of published keys.
func NewKnownPublic() *KnownPublic {
	return newKnownPublic(knownPublicSources())
}

func newKnownPublic(sources []KnownSource) *KnownPublic {
	k := &KnownPublic{sources: sources, byFingerprint: map[string]int{}, byKey: map[string]int{}}
	for i, s := range sources {
		for _, key := range s.Keys {
			k.byFingerprint[key.Fingerprint] = i
			if key.KeyFingerprint != "" {
				k.byKey[key.KeyFingerprint] = i
			}
		}
	}
	return k
}

// Sources returns the sources and their keys (a copy of the list's
// headers; the keys are shared and must not be changed).
func (k *KnownPublic) Sources() []KnownSource {
	return append([]KnownSource(nil), k.sources...)
}

// Lookup returns the source that publishes f's secret: by f's
// fingerprint, or by its public key's fingerprint.
func (k *KnownPublic) Lookup(f *report.Finding) (KnownSource, bool) {
	if k == nil {
		return KnownSource{}, false
	}
	i, ok := k.byFingerprint[f.Fingerprint]
	if !ok && f.KeyFingerprint != "" {
		i, ok = k.byKey[f.KeyFingerprint]
	}
	if !ok {
		return KnownSource{}, false
	}
	return k.sources[i], true
}

// Apply makes f info when its key is a published one, with a reason
// naming the source and the source's ID in its metadata
// (report.MetadataPublishedBy), and reports whether it did. Such a key protects
// nothing wherever it lies (a guest's RAM, a process's core, a file no
// package records), so neither provenance nor path context need be
// weighed.
func (k *KnownPublic) Apply(f *report.Finding) bool {
	s, ok := k.Lookup(f)
	if !ok {
		return false
	}
	from := f.Severity
	f.Severity = report.SeverityInfo
	f.Metadata = maps.Clone(f.Metadata) // may be shared with another finding
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	f.Metadata[report.MetadataPublishedBy] = s.ID
	f.Reasons = append(f.Reasons, report.Reason{
		Code: report.ReasonKnownPublicKey, From: from, To: report.SeverityInfo,
		Text: "a published key, which protects nothing: " + s.Description + " (" + s.From + ")",
	})
	return true
}
