package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// entry is one tar entry of a test layer.
type entry struct {
	name string
	body []byte
	typ  byte // 0: regular file
	link string
}

func file(name, body string) entry { return entry{name: name, body: []byte(body)} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir} }
func whiteout(p string) entry {
	i := strings.LastIndex(p, "/")
	return entry{name: p[:i+1] + ".wh." + p[i+1:]}
}
func opaque(d string) entry { return entry{name: strings.TrimSuffix(d, "/") + "/.wh..wh..opq"} }

func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typ, Linkname: e.link}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layer builds a layer with go-containerregistry's tarball package
// (gzip by default; zstd with comp).
func layer(t testing.TB, comp compression.Compression, entries ...entry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries)
	opts := []tarball.LayerOption{}
	if comp != "" {
		opts = append(opts, tarball.WithCompression(comp))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sshKey is a fresh ed25519 private key, as ssh-keygen writes it.
func sshKey(t testing.TB) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "key")
	testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f)
	key, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// tarLayer tars directory root with the real tar (tar's extra arguments
// first) into a layer.
func tarLayer(t testing.TB, root string, tarArgs ...string) v1.Layer {
	t.Helper()
	out := filepath.Join(t.TempDir(), "layer.tar")
	testutil.Run(t, "tar", append(tarArgs, "-C", root, "-cf", out, ".")...)
	l, err := tarball.LayerFromFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Synthetic secrets, generated per test run.
type secrets struct {
	npm    string // npm_ + 36 alphanumerics
	rsaPEM string
	github string
}

var (
	secretsOnce sync.Once
	theSecrets  secrets
)

func randAlnum(t testing.TB, n int) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var sb strings.Builder
	for range n {
		i, err := rand.Int(rand.Reader, big.NewInt(int64(len(alpha))))
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteByte(alpha[i.Int64()])
	}
	return sb.String()
}

func testSecrets(t testing.TB) secrets {
	secretsOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		theSecrets = secrets{
			npm:    "npm_" + randAlnum(t, 36),
			rsaPEM: string(pemKey),
			github: "ghp_" + randAlnum(t, 36),
		}
	})
	return theSecrets
}

// fp is the fingerprint of a secret value as docs/report.md defines it.
func fp(secret string) string {
	sum := sha256.Sum256([]byte(strings.TrimRight(secret, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func testEngine(t testing.TB) *detectors.Engine {
	t.Helper()
	e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newScanner(t testing.TB, opts Options) *Scanner {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = testEngine(t)
	}
	if opts.TmpDir == "" {
		opts.TmpDir = t.TempDir()
	}
	opts.Version = "test"
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inProcessRegistry starts go-containerregistry's in-memory registry.
func inProcessRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(nilLogger())))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func push(t testing.TB, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func pushIndex(t testing.TB, ref string, idx v1.ImageIndex) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// findingsByFP indexes a report's findings by fingerprint.
func findingsByFP(rep *report.Report) map[string]*report.Finding {
	out := map[string]*report.Finding{}
	for i := range rep.Findings {
		out[rep.Findings[i].Fingerprint] = &rep.Findings[i]
	}
	return out
}

func layerDigest(t testing.TB, l v1.Layer) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func nilLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func npmToken(t testing.TB) string { return "npm_" + randAlnum(t, 36) }
