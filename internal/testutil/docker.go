package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DockerLoad lays out a container image in a Docker data root as the
// real dockerd does on a host that pulled it: a private dockerd (overlay2
// storage driver, no networking) is started on dataRoot, `docker load`
// reads a `docker save` tarball whose layers are layerDirs tar'd by tar,
// bottom layer first, and the daemon is stopped again. A file named
// .wh.NAME in a layer directory is a whiteout, as in any image layer:
// dockerd stores it as overlayfs does, a character device. dataRoot then
// holds overlay2/<id>/diff directories, their lower-layer lists and the
// image's metadata, ready to be copied into a guest root.
func DockerLoad(t testing.TB, dataRoot, tag string, layerDirs ...string) {
	t.Helper()
	RequireTool(t, "dockerd", "docker", "tar")
	image := saveTarball(t, tag, layerDirs, false)
	// The daemon's socket path must stay under 108 bytes: not t.TempDir.
	run, err := os.MkdirTemp("/tmp", "dockerd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	sock := "unix://" + filepath.Join(run, "sock")
	d := exec.Command("dockerd", "--data-root", dataRoot, "--exec-root", filepath.Join(run, "exec"),
		"--pidfile", filepath.Join(run, "pid"), "-H", sock, "--storage-driver", "overlay2",
		"--iptables=false", "--ip6tables=false", "--bridge=none")
	stop := startDaemon(t, d, filepath.Join(run, "log"), "docker", "-H", sock, "version")
	defer stop()
	Run(t, "docker", "-H", sock, "load", "-i", image)
}

// PodmanLoad lays out a container image in a containers/storage graph
// root (Podman's, Buildah's and CRI-O's /var/lib/containers/storage) as
// the real podman does: `podman load` with the overlay driver reads a
// `docker save` tarball whose layers are layerDirs tar'd by tar, bottom
// layer first. graphRoot then holds overlay/<id>/diff directories with
// the same lower-layer lists as Docker's overlay2, and whiteouts as
// character devices.
func PodmanLoad(t testing.TB, graphRoot, tag string, layerDirs ...string) {
	t.Helper()
	RequireTool(t, "podman", "tar")
	image := saveTarball(t, tag, layerDirs, false)
	// podman refuses a run root path over 50 characters: not t.TempDir.
	run, err := os.MkdirTemp("/tmp", "podman")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	Run(t, "podman", "--root", graphRoot, "--runroot", run, "--storage-driver", "overlay", "load", "-i", image)
}

// PodmanSave writes out, the image of layerDirs (tar'd by tar, bottom
// layer first) as the real podman saves it in format ("docker-archive",
// "oci-archive", "oci-dir" or "docker-dir"): `podman load` of a `docker
// save` tarball into a private graph root, then `podman save`.
func PodmanSave(t testing.TB, out, format, tag string, layerDirs ...string) {
	t.Helper()
	RequireTool(t, "podman", "tar")
	image := saveTarball(t, tag, layerDirs, false)
	root := t.TempDir()
	// podman refuses a run root path over 50 characters: not t.TempDir.
	run, err := os.MkdirTemp("/tmp", "podman")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	podman := []string{"--root", root, "--runroot", run, "--storage-driver", "vfs"}
	Run(t, "podman", append(podman, "load", "-q", "-i", image)...)
	Run(t, "podman", append(podman, "save", "-q", "--format", format, "-o", out, tag)...)
}

// PodmanManifestList writes out, a dir: transport directory holding a
// manifest list, as the real podman pushes one (`podman manifest push
// --all ... dir:OUT`): one image per platform ("os/arch"), whose one
// layer is layerDirs[i] tar'd by tar and imported by `podman import`
// into a private graph root.
func PodmanManifestList(t testing.TB, out string, platforms, layerDirs []string) {
	t.Helper()
	RequireTool(t, "podman", "tar")
	if len(platforms) != len(layerDirs) {
		t.Fatalf("PodmanManifestList: %d platforms, %d layers", len(platforms), len(layerDirs))
	}
	work, root := t.TempDir(), t.TempDir()
	// podman refuses a run root path over 50 characters: not t.TempDir.
	run, err := os.MkdirTemp("/tmp", "podman")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	podman := []string{"--root", root, "--runroot", run, "--storage-driver", "vfs"}
	list := "localhost/imgaudit/list:1"
	Run(t, "podman", append(podman, "manifest", "create", list)...)
	for i, d := range layerDirs {
		osName, arch, ok := strings.Cut(platforms[i], "/")
		if !ok {
			t.Fatalf("PodmanManifestList: platform %q, want os/arch", platforms[i])
		}
		layer := filepath.Join(work, fmt.Sprintf("layer%d.tar", i))
		Run(t, "tar", "--numeric-owner", "-C", d, "-cf", layer, ".")
		tag := fmt.Sprintf("localhost/imgaudit/p%d:1", i)
		Run(t, "podman", append(podman, "import", "-q", "--os", osName, "--arch", arch, layer, tag)...)
		Run(t, "podman", append(podman, "manifest", "add", list, "containers-storage:"+tag)...)
	}
	Run(t, "podman", append(podman, "manifest", "push", "-q", "--all", list, "dir:"+out)...)
}

// ContainerdImport lays out a container image in a containerd root as
// the real containerd does on a host that pulled it (a Kubernetes node,
// or Docker 29's containerd image store): a private containerd is
// started on root, `ctr images import` unpacks a `docker save` tarball
// whose layers are layerDirs tar'd by tar (bottom layer first) and
// compressed by gzip, as a registry serves them, with the overlayfs
// snapshotter, and the daemon is stopped again. root then holds
// the layers' blobs in io.containerd.content.v1.content/blobs/sha256/ and
// the unpacked layers in io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs.
func ContainerdImport(t testing.TB, root, tag string, layerDirs ...string) {
	t.Helper()
	RequireTool(t, "containerd", "ctr", "tar", "gzip")
	image := saveTarball(t, tag, layerDirs, true)
	run, err := os.MkdirTemp("/tmp", "containerd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	sock := filepath.Join(run, "sock")
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n[grpc]\n  address = %q\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
		root, filepath.Join(run, "state"), sock)
	if err := os.WriteFile(filepath.Join(run, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	d := exec.Command("containerd", "--config", filepath.Join(run, "config.toml"))
	stop := startDaemon(t, d, filepath.Join(run, "log"), "ctr", "-a", sock, "version")
	defer stop()
	Run(t, "ctr", "-a", sock, "images", "import", "--snapshotter", "overlayfs", image)
}

// saveTarball writes a `docker save` tarball of the layers, each tar'd by
// tar (and compressed by gzip -n with gzipLayers), and returns its path.
func saveTarball(t testing.TB, tag string, layerDirs []string, gzipLayers bool) string {
	t.Helper()
	work := t.TempDir()
	var layers, diffIDs []string
	for i, d := range layerDirs {
		name := fmt.Sprintf("layer%d.tar", i)
		Run(t, "tar", "--numeric-owner", "-C", d, "-cf", filepath.Join(work, name), ".")
		b, err := os.ReadFile(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b) // a diff ID is the uncompressed layer's
		if gzipLayers {
			Run(t, "gzip", "-n", filepath.Join(work, name))
			name += ".gz"
		}
		layers = append(layers, name)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
	}
	config := map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	manifest := []map[string]any{{"Config": "config.json", "RepoTags": []string{tag}, "Layers": layers}}
	for name, v := range map[string]any{"config.json": config, "manifest.json": manifest} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image := filepath.Join(work, "image.tar")
	Run(t, "tar", append([]string{"-C", work, "-cf", image, "manifest.json", "config.json"}, layers...)...)
	return image
}

// startDaemon starts d with its output in logPath, waits until the ready
// command succeeds (a minute at most), and returns what stops it.
func startDaemon(t testing.TB, d *exec.Cmd, logPath string, ready ...string) (stop func()) {
	t.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		log.Close()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	stop = func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
		log.Close()
	}
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if exec.Command(ready[0], ready[1:]...).Run() == nil {
			return stop
		}
		if time.Since(start) > 60*time.Second {
			stop()
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s did not answer within a minute:\n%s", d.Path, b)
		}
	}
}
