// Package qemufixture makes real memory images for tests: it starts
// qemu-system-x86_64 (TCG, -S, -nodefaults) with known bytes planted at known
// guest-physical addresses by `-device loader`, and drives the human
// monitor over a unix socket (savevm, migrate, dump-guest-memory).
package qemufixture

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// Plant is a run of known bytes at a guest-physical address.
type Plant struct {
	Name string
	Addr int64
	Data []byte
}

// Plants returns the planted data for a guest of memMiB MiB: secrets that
// cross 4 KiB page boundaries, an AES-128 key schedule crossing one, a
// multi-page random run and one near the top of RAM.
func Plants(memMiB int) []Plant {
	rng := rand.New(rand.NewPCG(6, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	key := random(16)
	top := int64(memMiB)<<20 - 0x1000 - 24
	return []Plant{
		{"page-crossing secret", 0x1fe0, []byte("imgaudit-planted-secret-0001 password=Tr0ub4dor&3 crosses a page!")},
		{"aes-128 key schedule", 0x5ff60, AES128Schedule(key)},
		{"random run", 0x123456, random(5000)},
		{"top of RAM", top, []byte("imgaudit-top-of-ram-secret-0002-xyz")},
	}
}

// AES128Schedule expands an AES-128 key into its 176-byte round-key schedule,
// the pattern key finders look for in memory.
func AES128Schedule(key []byte) []byte {
	w := make([]byte, 176)
	copy(w, key)
	rcon := byte(1)
	for i := 16; i < 176; i += 4 {
		t := [4]byte{w[i-4], w[i-3], w[i-2], w[i-1]}
		if i%16 == 0 {
			t = [4]byte{sbox(t[1]) ^ rcon, sbox(t[2]), sbox(t[3]), sbox(t[0])}
			rcon = xtime(rcon)
		}
		for j := range 4 {
			w[i+j] = w[i-16+j] ^ t[j]
		}
	}
	return w
}

func xtime(b byte) byte {
	if b&0x80 != 0 {
		return b<<1 ^ 0x1b
	}
	return b << 1
}

// sbox computes the AES S-box: the GF(2^8) inverse then the affine map.
func sbox(b byte) byte {
	inv := byte(0)
	if b != 0 {
		for c := 1; c < 256; c++ {
			if gmul(b, byte(c)) == 1 {
				inv = byte(c)
				break
			}
		}
	}
	s := inv
	for i := 1; i <= 4; i++ {
		s ^= inv<<i | inv>>(8-i)
	}
	return s ^ 0x63
}

func gmul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		a = xtime(a)
		b >>= 1
	}
	return p
}

// Config says how to start the guest.
type Config struct {
	Machine string // "pc" (default) or "q35"
	MemMiB  int    // default 64
	Disk    bool   // attach a 16 MiB qcow2 (for savevm)
	// Fill plants this many pseudo-random bytes at 16 MiB, so that a
	// stream holds many non-zero pages (benchmarks).
	Fill int
	// Extra plants are loaded after the default ones (Plants) and are part
	// of VM.Plants; they must not overlap them.
	Extra []Plant
	// Bare leaves out the default plants: the guest holds only Extra (a
	// benchmark that fills RAM with its own contents and counts every key).
	Bare bool
}

// VM is a stopped guest with a monitor.
type VM struct {
	Dir    string
	Plants []Plant
	cmd    *exec.Cmd
	conn   net.Conn
	rd     *bufio.Reader
	out    bytes.Buffer
}

// Start launches qemu-system-x86_64 with the plants loaded; it is killed
// when the test ends.
func Start(t testing.TB, cfg Config) *VM {
	t.Helper()
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-img")
	if cfg.Machine == "" {
		cfg.Machine = "pc"
	}
	if cfg.MemMiB == 0 {
		cfg.MemMiB = 64
	}
	dir := t.TempDir()
	vm := &VM{Dir: dir, Plants: append(Plants(cfg.MemMiB), cfg.Extra...)}
	if cfg.Bare {
		vm.Plants = cfg.Extra
	}
	sock := filepath.Join(dir, "mon.sock")
	args := []string{"-M", cfg.Machine, "-accel", "tcg", "-nodefaults", "-S", "-m", fmt.Sprint(cfg.MemMiB),
		"-display", "none", "-monitor", "unix:" + sock + ",server=on,wait=off"}
	for i, p := range vm.Plants {
		f := filepath.Join(dir, fmt.Sprintf("plant%d.bin", i))
		if err := os.WriteFile(f, p.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-device", fmt.Sprintf("loader,file=%s,addr=0x%x,force-raw=on", f, p.Addr))
	}
	if cfg.Fill > 0 {
		f := filepath.Join(dir, "fill.bin")
		rng := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, cfg.Fill)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-device", "loader,file="+f+",addr=0x1000000,force-raw=on")
	}
	if cfg.Disk {
		img := filepath.Join(dir, "disk.qcow2")
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", img, "16M")
		args = append(args, "-drive", "file="+img+",if=none,id=d0,format=qcow2", "-device", "ide-hd,drive=d0")
	}
	vm.cmd = exec.Command("qemu-system-x86_64", args...)
	vm.cmd.Stdout = &vm.out
	vm.cmd.Stderr = &vm.out
	if err := vm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if vm.conn != nil {
			vm.conn.Close()
		}
		vm.cmd.Process.Kill()
		vm.cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			vm.conn = c
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu monitor did not come up: %v\n%s", err, vm.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	vm.rd = bufio.NewReader(vm.conn)
	vm.readPrompt(t)
	return vm
}

func (vm *VM) readPrompt(t testing.TB) string {
	t.Helper()
	vm.conn.SetReadDeadline(time.Now().Add(3 * time.Minute))
	var b strings.Builder
	for {
		c, err := vm.rd.ReadByte()
		if err != nil {
			t.Fatalf("monitor: %v after %q\n%s", err, b.String(), vm.out.String())
		}
		b.WriteByte(c)
		if strings.HasSuffix(b.String(), "(qemu) ") {
			return b.String()
		}
	}
}

// HMP runs a monitor command and fails the test if it reports an error.
// "{dir}" in cmd is replaced by the VM's directory.
func (vm *VM) HMP(t testing.TB, cmd string) string {
	t.Helper()
	out, err := vm.TryHMP(t, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryHMP runs a monitor command and returns the error it reports, if any
// (a QEMU built without snappy refuses dump-guest-memory -s).
func (vm *VM) TryHMP(t testing.TB, cmd string) (string, error) {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, "{dir}", vm.Dir)
	if _, err := fmt.Fprintf(vm.conn, "%s\n", cmd); err != nil {
		t.Fatal(err)
	}
	out := vm.readPrompt(t)
	// Drop the echoed command line (full of terminal escapes) and the prompt.
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	}
	out = strings.TrimSuffix(out, "(qemu) ")
	if strings.Contains(out, "Error") || strings.Contains(out, "error") {
		return out, fmt.Errorf("monitor %q: %s", cmd, strings.TrimSpace(out))
	}
	return out, nil
}

// Capture starts a guest, runs the monitor commands and returns the VM
// directory holding the files they wrote. The guest is stopped afterwards.
func Capture(t testing.TB, cfg Config, cmds ...string) *VM {
	t.Helper()
	vm := Start(t, cfg)
	for _, c := range cmds {
		vm.HMP(t, c)
	}
	vm.Quit()
	return vm
}

// Quit stops the guest.
func (vm *VM) Quit() {
	fmt.Fprintf(vm.conn, "quit\n")
	vm.cmd.Wait()
}

// Path returns a file in the VM directory.
func (vm *VM) Path(name string) string { return filepath.Join(vm.Dir, name) }
