package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	work := t.TempDir()
	var layers, diffIDs []string
	for i, d := range layerDirs {
		name := fmt.Sprintf("layer%d.tar", i)
		Run(t, "tar", "--numeric-owner", "-C", d, "-cf", filepath.Join(work, name), ".")
		b, err := os.ReadFile(filepath.Join(work, name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
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

	// The daemon's socket path must stay under 108 bytes: not t.TempDir.
	run, err := os.MkdirTemp("/tmp", "dockerd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	sock := "unix://" + filepath.Join(run, "sock")
	log, err := os.Create(filepath.Join(work, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	d := exec.Command("dockerd", "--data-root", dataRoot, "--exec-root", filepath.Join(run, "exec"),
		"--pidfile", filepath.Join(run, "pid"), "-H", sock, "--storage-driver", "overlay2",
		"--iptables=false", "--ip6tables=false", "--bridge=none")
	d.Stdout, d.Stderr = log, log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	stop := func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(60 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
	}
	defer stop()
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if exec.Command("docker", "-H", sock, "version").Run() == nil {
			break
		}
		if time.Since(start) > 60*time.Second {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("dockerd did not answer within a minute:\n%s", b)
		}
	}
	Run(t, "docker", "-H", sock, "load", "-i", image)
}
