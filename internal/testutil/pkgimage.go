package testutil

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// PackagedImage is a small real image for package provenance and path
// context tests: an ext4 filesystem in qcow2, whose root was populated by
// the real dpkg, mkfs.ext4 -d and debugfs. Every key is generated at test
// time; Keys maps a name to the key file's PEM block (the secret value).
type PackagedImage struct {
	Image string
	Keys  map[string][]byte
	// AWSID and AWSSecret are the key pair in /opt/app/tests/.env.
	AWSID, AWSSecret string
}

// Guest paths of PackagedImage's files.
const (
	PkgKeyPath     = "/usr/share/selftest/test.key"                        // "packaged": package selftest-keys, unmodified
	PkgPyPath      = "/usr/lib/python3/dist-packages/selftest/keys.py"     // "packaged" again, in a Python module
	PkgPycDir      = "/usr/lib/python3/dist-packages/selftest/__pycache__" // its bytecode, compiled after install
	EditedKeyPath  = "/usr/share/edited/edited.key"                        // "edited": package edited-keys, modified since
	EtcKeyPath     = "/etc/app/secret.key"                                 // "etc": no package
	HomeKeyPath    = "/home/alice/.ssh/id_ed25519"                         // "home": no package
	TestsEnvPath   = "/opt/app/tests/.env"                                 // the AWS pair: no package, a test directory
	DocKeyPath     = "/usr/share/doc/app/examples/example.key"             // "doc": no package, documentation
	deletedPkgCopy = "/var/tmp/packaged-copy.key"                          // "packaged", rm'ed: free blocks
	deletedKeyPath = "/var/tmp/deleted.key"                                // "deleted", rm'ed: free blocks
)

// BuildPackagedImage builds the image in a temporary directory. Keys:
// "packaged" (shipped by package selftest-keys in PkgKeyPath, and left in
// free blocks by a deleted copy), "compiled" (in selftest-keys' Python
// module PkgPyPath as one string literal per line, which the compiler
// joins: only the module's __pycache__ bytecode holds the key whole),
// "edited" (shipped by
// edited-keys, whose file was then edited), "etc", "home", "doc", and
// "deleted" (only in free blocks). Without localSecrets the image holds
// only "packaged": every finding of a scan is public material.
func BuildPackagedImage(t testing.TB, localSecrets bool) PackagedImage {
	t.Helper()
	RequireTool(t, "ssh-keygen", "mkfs.ext4", "debugfs", "qemu-img", "python3")
	dir := t.TempDir()
	img := PackagedImage{Keys: map[string][]byte{}}
	for _, k := range []string{"packaged", "compiled", "edited", "etc", "home", "doc", "deleted"} {
		f := filepath.Join(dir, "key-"+k)
		Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		img.Keys[k] = []byte(strings.TrimRight(string(b), "\n"))
	}
	img.AWSID = "AKIA" + randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	img.AWSSecret = randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+")

	key := func(k string) []byte { return append(append([]byte(nil), img.Keys[k]...), '\n') }
	py := "# self-test material of a library\nSELFTEST_KEY = (\n"
	for _, line := range strings.Split(string(img.Keys["compiled"]), "\n") {
		py += "    \"" + line + "\\n\"\n"
	}
	py += ")\n"
	debs := []string{
		BuildDeb(t, dir, DebPackage{Name: "selftest-keys", Version: "1.0-1", Files: []DebFile{
			{Path: PkgKeyPath, Data: key("packaged")},
			{Path: PkgPyPath, Data: []byte(py)},
		}}),
	}
	if localSecrets {
		debs = append(debs, BuildDeb(t, dir, DebPackage{Name: "edited-keys", Version: "2.0-1", Files: []DebFile{
			{Path: EditedKeyPath, Data: key("edited")},
		}}))
	}
	root := filepath.Join(dir, "root")
	DpkgInstall(t, root, debs...)
	// As py3compile does after installing a Python package: timestamp-based
	// bytecode next to the source (SOURCE_DATE_EPOCH would switch to hashes).
	cmd := "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)"
	Run(t, "env", "-u", "SOURCE_DATE_EPOCH", "python3", "-c", cmd, filepath.Join(root, PkgPyPath))
	write := func(p string, b []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(deletedPkgCopy, key("packaged"))
	deleted := []string{deletedPkgCopy}
	if localSecrets {
		edited, err := os.ReadFile(filepath.Join(root, EditedKeyPath))
		if err != nil {
			t.Fatal(err)
		}
		write(EditedKeyPath, append(edited, "# edited by the admin\n"...))
		write(EtcKeyPath, key("etc"))
		write(HomeKeyPath, key("home"))
		write(DocKeyPath, key("doc"))
		write(TestsEnvPath, []byte("AWS_ACCESS_KEY_ID="+img.AWSID+"\nAWS_SECRET_ACCESS_KEY="+img.AWSSecret+"\n"))
		write(deletedKeyPath, key("deleted"))
		deleted = append(deleted, deletedKeyPath)
	}

	raw := filepath.Join(dir, "fs.raw")
	Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, raw, "48M")
	// rm, as the guest would: the blocks are freed, not wiped.
	for _, p := range deleted {
		Run(t, "debugfs", "-w", "-R", "rm "+p, raw)
	}
	img.Image = filepath.Join(dir, "packaged.qcow2")
	Run(t, "qemu-img", "convert", "-O", "qcow2", raw, img.Image)
	return img
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
