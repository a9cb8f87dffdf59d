package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// maxIndexDepth bounds nested indexes; maxManifests bounds the images one
// index may expand to (hostile registries).
const (
	maxIndexDepth = 4
	maxManifests  = 4096
)

// image is one image manifest to scan (one platform of an index).
type image struct {
	Target   string // display name: "registry/repo:tag@sha256:..." or "PATH@..."
	Digest   string // manifest digest (image ID for docker save tarballs)
	Platform string
	Format   string // oci-image, docker-image, oci-artifact, docker-archive
	Layers   []blob
	Config   *blob
	Err      error
	// artifact: the blobs are independent files, not a layered filesystem.
	artifact bool
}

func (s *Scanner) nameOptions() []name.Option {
	if s.opts.PlainHTTP {
		return []name.Option{name.Insecure}
	}
	return nil
}

// transport is the HTTP transport: timeouts on connect, TLS handshake and
// response headers. Body reads are guarded by stallReader instead, since
// a blob may legitimately take long to stream. With PlainHTTP, registry
// API requests are made over HTTP from the start: go-containerregistry
// pings https first even for insecure registries.
func (s *Scanner) transport() http.RoundTripper {
	t := s.opts.Transport
	if t == nil {
		ht := remote.DefaultTransport.(*http.Transport).Clone()
		ht.DialContext = (&net.Dialer{Timeout: s.opts.Timeout, KeepAlive: 30 * time.Second}).DialContext
		ht.TLSHandshakeTimeout = s.opts.Timeout
		ht.ResponseHeaderTimeout = s.opts.Timeout
		t = ht
	}
	if s.opts.PlainHTTP {
		t = plainHTTP{t}
	}
	return t
}

// plainHTTP sends registry API requests (paths under /v2/) over HTTP; a
// token service elsewhere keeps the scheme its challenge names.
type plainHTTP struct{ next http.RoundTripper }

func (p plainHTTP) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "https" && (r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/")) {
		r = r.Clone(r.Context())
		r.URL.Scheme = "http"
	}
	return p.next.RoundTrip(r)
}

// remoteOptions configure the puller; each call passes its context.
func (s *Scanner) remoteOptions() []remote.Option {
	return []remote.Option{
		remote.WithAuthFromKeychain(s.opts.Keychain),
		remote.WithTransport(s.transport()),
		remote.WithUserAgent("imgaudit/" + s.opts.Version),
		remote.WithRetryBackoff(remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: s.opts.Retries + 1, Cap: 10 * time.Second}),
	}
}

// isBareRepository reports whether a REF names a repository without a tag
// or digest.
func isBareRepository(ref string) bool {
	last := ref[strings.LastIndex(ref, "/")+1:]
	return !strings.ContainsAny(last, ":@")
}

// resolveRemote expands a REF into the images to scan. Failures become
// images with Err set, so that they are reported as failed targets.
func (s *Scanner) resolveRemote(ctx context.Context, refStr string) []image {
	fail := func(err error) []image { return []image{{Target: refStr, Err: err}} }
	if s.opts.AllTags {
		repoStr := refStr
		if !isBareRepository(refStr) {
			r, err := name.ParseReference(refStr, s.nameOptions()...)
			if err != nil {
				return fail(fmt.Errorf("parsing reference: %w", err))
			}
			repoStr = r.Context().Name()
		}
		repo, err := name.NewRepository(repoStr, s.nameOptions()...)
		if err != nil {
			return fail(fmt.Errorf("parsing repository: %w", err))
		}
		tags, err := s.puller.List(ctx, repo)
		if err != nil {
			return fail(fmt.Errorf("listing tags of %s: %w", repo.Name(), remoteError(err)))
		}
		slices.Sort(tags)
		var out []image
		for _, tag := range tags {
			out = append(out, s.resolveRef(ctx, repo.Tag(tag))...)
		}
		if len(out) == 0 {
			return fail(fmt.Errorf("repository %s has no tags", repo.Name()))
		}
		return out
	}
	ref, err := name.ParseReference(refStr, s.nameOptions()...)
	if err != nil {
		return fail(fmt.Errorf("parsing reference: %w", err))
	}
	return s.resolveRef(ctx, ref)
}

// resolveRef fetches a manifest; an index expands to its platforms.
func (s *Scanner) resolveRef(ctx context.Context, ref name.Reference) []image {
	desc, err := s.puller.Get(ctx, ref)
	if err != nil {
		return []image{{Target: ref.Name(), Err: fmt.Errorf("fetching manifest: %w", remoteError(err))}}
	}
	display := ref.Name()
	if _, isDigest := ref.(name.Digest); !isDigest {
		display += "@" + desc.Digest.String()
	}
	if desc.MediaType.IsIndex() {
		return s.expandRemoteIndex(ctx, ref.Context(), ref.Name(), desc.Manifest, 0)
	}
	return []image{s.remoteImage(ref.Context(), display, desc.Digest.String(), desc.MediaType, desc.Manifest, "")}
}

func (s *Scanner) expandRemoteIndex(ctx context.Context, repo name.Repository, display string, raw []byte, depth int) []image {
	if depth >= maxIndexDepth {
		return []image{{Target: display, Err: fmt.Errorf("indexes nested deeper than %d", maxIndexDepth)}}
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return []image{{Target: display, Err: fmt.Errorf("parsing index: %w", err)}}
	}
	base, _, _ := strings.Cut(display, "@")
	var out []image
	for _, child := range s.selectManifests(im.Manifests) {
		if len(out) >= maxManifests {
			out = append(out, image{Target: display, Err: fmt.Errorf("index lists more than %d manifests: the rest are skipped", maxManifests)})
			break
		}
		target := base + "@" + child.Digest.String()
		d, err := s.puller.Get(ctx, repo.Digest(child.Digest.String()))
		if err != nil {
			out = append(out, image{Target: target, Platform: platformString(child.Platform), Err: fmt.Errorf("fetching manifest: %w", remoteError(err))})
			continue
		}
		if d.MediaType.IsIndex() {
			out = append(out, s.expandRemoteIndex(ctx, repo, target, d.Manifest, depth+1)...)
			continue
		}
		out = append(out, s.remoteImage(repo, target, child.Digest.String(), d.MediaType, d.Manifest, platformString(child.Platform)))
	}
	if len(out) == 0 {
		return []image{{Target: display, Err: fmt.Errorf("index has no manifest for platform %s", s.opts.Platform)}}
	}
	return out
}

// selectManifests keeps an index's manifests that match --platform and
// drops attestation manifests (platform unknown/unknown), which hold
// provenance, not the image.
func (s *Scanner) selectManifests(ms []v1.Descriptor) []v1.Descriptor {
	var out []v1.Descriptor
	for _, m := range ms {
		if m.Platform != nil && m.Platform.OS == "unknown" && m.Platform.Architecture == "unknown" {
			continue
		}
		if s.platform != nil && !m.MediaType.IsIndex() && (m.Platform == nil || !m.Platform.Satisfies(*s.platform)) {
			continue
		}
		out = append(out, m)
	}
	return out
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// imageFromManifest builds the image of a manifest; openBlob opens a blob
// by digest.
func imageFromManifest(target, digest string, mt types.MediaType, raw []byte, platform string, blobs func(v1.Hash) blobSource) image {
	img := image{Target: target, Digest: digest, Platform: platform}
	switch mt {
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		img.Err = errors.New("docker schema 1 manifests are not supported")
		return img
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		img.Err = fmt.Errorf("parsing manifest: %w", err)
		return img
	}
	img.Format = "oci-image"
	if mt == types.DockerManifestSchema2 {
		img.Format = "docker-image"
	}
	isImage := m.Config.MediaType == types.OCIConfigJSON || m.Config.MediaType == types.DockerConfigJSON
	if !isImage {
		img.Format, img.artifact = "oci-artifact", true
	}
	for _, l := range m.Layers {
		src := blobs(l.Digest)
		img.Layers = append(img.Layers, blob{
			Digest: l.Digest.String(), MediaType: string(l.MediaType), Size: l.Size,
			Title: l.Annotations["org.opencontainers.image.title"], Kind: blobTar, open: src.open, openAt: src.openAt,
		})
	}
	if isImage && m.Config.Size <= maxConfigBytes {
		img.Config = &blob{Digest: m.Config.Digest.String(), MediaType: string(m.Config.MediaType), Size: m.Config.Size, Kind: blobConfig, open: blobs(m.Config.Digest).open}
	}
	return img
}

func (s *Scanner) remoteImage(repo name.Repository, target, digest string, mt types.MediaType, raw []byte, platform string) image {
	return imageFromManifest(target, digest, mt, raw, platform, func(h v1.Hash) blobSource {
		return blobSource{open: func(ctx context.Context) (io.ReadCloser, error) {
			ctx, cancel := context.WithCancel(ctx)
			l, err := s.puller.Layer(ctx, repo.Digest(h.String()))
			if err != nil {
				cancel()
				return nil, remoteError(err)
			}
			rc, err := l.Compressed()
			if err != nil {
				cancel()
				return nil, remoteError(err)
			}
			return newStallReader(rc, s.opts.Timeout, cancel), nil
		}}
	})
}

// errStalled is returned when a blob stream made no progress for the
// timeout; it is a network error, so the blob is retried.
var errStalled = stallError{}

type stallError struct{}

func (stallError) Error() string   { return "blob stream stalled" }
func (stallError) Timeout() bool   { return true }
func (stallError) Temporary() bool { return true }

// stallReader cancels a blob download that makes no progress for the
// timeout (a hung connection would otherwise block the scan forever).
type stallReader struct {
	rc      io.ReadCloser
	timeout time.Duration
	cancel  context.CancelFunc
	timer   *time.Timer
	mu      sync.Mutex
	stalled bool
}

func newStallReader(rc io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *stallReader {
	r := &stallReader{rc: rc, timeout: timeout, cancel: cancel}
	r.timer = time.AfterFunc(timeout, func() {
		r.mu.Lock()
		r.stalled = true
		r.mu.Unlock()
		cancel()
	})
	return r
}

func (r *stallReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.timer.Reset(r.timeout)
	if err != nil && err != io.EOF {
		r.mu.Lock()
		stalled := r.stalled
		r.mu.Unlock()
		if stalled {
			return n, fmt.Errorf("no data for %s: %w", r.timeout, errStalled)
		}
	}
	return n, err
}

func (r *stallReader) Close() error {
	r.timer.Stop()
	err := r.rc.Close()
	r.cancel()
	return err
}

// remoteError rewrites a registry's error response for people: the
// diagnostic's detail is shown as key=value pairs, not as Go's map text
// ("MANIFEST_UNKNOWN: manifest unknown; map[Tag:nope]"). The error still
// unwraps to go-containerregistry's *transport.Error.
func remoteError(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return err
	}
	var parts []string
	for _, d := range te.Errors {
		msg := string(d.Code)
		if d.Message != "" {
			msg += ": " + d.Message
		}
		if det := detailText(d.Detail); det != "" {
			msg += " (" + det + ")"
		}
		parts = append(parts, msg)
	}
	text := strings.Join(parts, "; ")
	if te.Request != nil {
		text = te.Request.Method + " " + redactedURL(te.Request.URL) + ": " + text
	}
	return &rewordedError{msg: strings.Replace(err.Error(), te.Error(), text, 1), err: err}
}

// detailText renders a diagnostic's free-form detail: a JSON object as
// sorted key=value pairs, anything else as compact JSON.
func detailText(d any) string {
	switch v := d.(type) {
	case nil:
		return ""
	case string:
		return v
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+detailText(v[k]))
		}
		return strings.Join(parts, ", ")
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Sprint(d)
	}
	return string(b)
}

// redactedURL is the URL as go-containerregistry shows it in errors: no
// query string (it may carry tokens).
func redactedURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.User = "", nil
	return c.String()
}

type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }
