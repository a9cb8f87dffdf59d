package hostile

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// FATCrossLinked writes a 64 MiB FAT32 filesystem (mkfs.fat, one 512-byte
// sector a cluster, a directory /d made by mmd) whose /d is then grown to
// 16 MiB of directory entries, the most the reader reads of one
// directory: 524,286 files of 4 GiB that all start on the same cluster,
// the head of a chain through every cluster after the directory's (about
// 96,000 clusters). Their first cluster holds HostileSecret. Following
// every file's chain takes 5 * 10^10 steps.
func FATCrossLinked(ctx context.Context, dir string) (string, error) {
	return FATCrossLinkedSized(ctx, dir, 32768)
}

// FATCrossLinkedSized is FATCrossLinked with a directory of dirClusters
// clusters (16 entries each, the first holding . and ..).
func FATCrossLinkedSized(ctx context.Context, dir string, dirClusters int) (string, error) {
	path := filepath.Join(dir, "cross-linked.vfat")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(path, 64<<20); err != nil {
		return "", err
	}
	if err := run(ctx, "mkfs.fat", "-F", "32", "-s", "1", path); err != nil {
		return "", err
	}
	if err := run(ctx, "mmd", "-i", path, "::/d"); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	boot := make([]byte, 512)
	if _, err := f.ReadAt(boot, 0); err != nil {
		return "", err
	}
	bps := int64(le.Uint16(boot[11:]))
	spc := int64(boot[13])
	rsvd := int64(le.Uint16(boot[14:]))
	nfats := int64(boot[16])
	total := int64(le.Uint32(boot[32:]))
	fatSize := int64(le.Uint32(boot[36:]))
	root := le.Uint32(boot[44:])
	clusterSize := bps * spc
	firstData := rsvd + nfats*fatSize
	clusters := uint32((total - firstData) / spc)
	clusterOff := func(c uint32) int64 { return firstData*bps + int64(c-2)*clusterSize }

	// Find /d's first cluster in the root directory.
	rootDir := make([]byte, clusterSize)
	if _, err := f.ReadAt(rootDir, clusterOff(root)); err != nil {
		return "", err
	}
	var d uint32
	for i := 0; i+32 <= len(rootDir); i += 32 {
		if string(rootDir[i:i+11]) == "D          " {
			d = uint32(le.Uint16(rootDir[i+20:]))<<16 | uint32(le.Uint16(rootDir[i+26:]))
		}
	}
	if d < 2 || int64(d)+int64(dirClusters) >= int64(clusters) {
		return "", fmt.Errorf("%s: mmd made no usable /d (cluster %d of %d)", path, d, clusters)
	}

	// The FAT: /d's chain runs through dirClusters clusters, and the
	// files' chain from the next cluster through the last.
	fat := make([]byte, (int64(clusters)+2)*4)
	if _, err := f.ReadAt(fat, rsvd*bps); err != nil {
		return "", err
	}
	const endOfChain = 0x0FFFFFFF
	for c := d; c < d+uint32(dirClusters)-1; c++ {
		le.PutUint32(fat[4*c:], c+1)
	}
	le.PutUint32(fat[4*(d+uint32(dirClusters)-1):], endOfChain)
	data := d + uint32(dirClusters)
	for c := data; c < clusters+1; c++ {
		le.PutUint32(fat[4*c:], c+1)
	}
	le.PutUint32(fat[4*(clusters+1):], endOfChain)
	for i := range nfats {
		if _, err := f.WriteAt(fat, (rsvd+i*fatSize)*bps); err != nil {
			return "", err
		}
	}
	if _, err := f.WriteAt([]byte(HostileSecret().Credentials()), clusterOff(data)); err != nil {
		return "", err
	}

	// /d's entries: . and .., then files F0000000.TXT on, each of
	// 0xFFFFFFFF bytes starting at the data cluster.
	entry := func(b []byte, name string, attr byte, cluster, size uint32) {
		copy(b[0:11], name)
		b[11] = attr
		le.PutUint16(b[20:], uint16(cluster>>16))
		le.PutUint16(b[26:], uint16(cluster))
		le.PutUint32(b[28:], size)
	}
	buf := make([]byte, clusterSize)
	n := 0
	for k := range uint32(dirClusters) {
		clear(buf)
		i := 0
		if k == 0 {
			entry(buf[0:], ".          ", 0x10, d, 0)
			entry(buf[32:], "..         ", 0x10, 0, 0)
			i = 64
		}
		for ; i < len(buf); i += 32 {
			entry(buf[i:], fmt.Sprintf("F%07dTXT", n), 0x20, data, 0xFFFFFFFF)
			n++
		}
		if _, err := f.WriteAt(buf, clusterOff(d+k)); err != nil {
			return "", err
		}
	}
	return path, nil
}

// Ext4SharedIndex writes a 64 MiB ext4 (mkfs.ext4 -d, 4 KiB blocks) of
// 20,000 empty files in 20 directories and one file /meta of four blocks,
// whose empty files are then all given the same extent tree: a root of
// depth 4 that names /meta's first block, where each index block names the
// next 340 times over and the last is an empty leaf. Each file's tree is
// 4 * 10^7 index blocks that map nothing; the reader's cap of index
// blocks per file (16,384, the filesystem's block count) stops each, but
// only after reading that many.
func Ext4SharedIndex(ctx context.Context, dir string) (string, error) {
	return Ext4SharedIndexSized(ctx, dir, 20, 1000)
}

// Ext4SharedIndexSized is Ext4SharedIndex with dirs directories of files
// empty files each.
func Ext4SharedIndexSized(ctx context.Context, dir string, dirs, files int) (string, error) {
	path := filepath.Join(dir, "shared-index.ext4")
	src := filepath.Join(dir, "shared-index.root")
	defer os.RemoveAll(src)
	for d := range dirs {
		sub := filepath.Join(src, fmt.Sprintf("d%02d", d))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return "", err
		}
		for i := range files {
			if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
				return "", err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(src, "meta"), randomBytes(41, 4*4096), 0o644); err != nil {
		return "", err
	}
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-b", "4096", "-N", fmt.Sprint(dirs*files+1024),
		"-O", "^metadata_csum,^has_journal", "-d", src, path, "64M"); err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "debugfs", "-R", "blocks /meta", path)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("debugfs blocks /meta: %w", err)
	}
	var meta []uint32
	for _, w := range strings.Fields(out.String()) {
		n, err := strconv.ParseUint(w, 10, 32)
		if err != nil {
			return "", fmt.Errorf("debugfs blocks /meta: %q", out.String())
		}
		meta = append(meta, uint32(n))
	}
	if len(meta) != 4 {
		return "", fmt.Errorf("debugfs blocks /meta: %q, want 4 blocks", out.String())
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const bs = 4096
	// The tree: meta[0] (depth 3) names meta[1] (depth 2) 340 times,
	// which names meta[2] (depth 1), which names the empty leaf meta[3].
	for level := range 4 {
		b := make([]byte, bs)
		depth := 3 - level
		entries := (bs - 12) / 12
		if depth == 0 {
			entries = 0
		}
		extentHeader(b, entries, (bs-12)/12, depth)
		for i := range entries {
			le.PutUint32(b[12+12*i+4:], meta[level+1]) // ei_leaf_lo
		}
		if _, err := f.WriteAt(b, int64(meta[level])*bs); err != nil {
			return "", err
		}
	}

	// Every empty regular file's i_block becomes a root of depth 4 that
	// names meta[0]. The superblock gives the inode tables' places.
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return "", err
	}
	inodesCount := le.Uint32(sb[0:])
	perGroup := le.Uint32(sb[40:])
	inodeSize := int64(le.Uint16(sb[88:]))
	descSize := int64(32)
	if le.Uint32(sb[96:])&0x80 != 0 { // 64bit
		descSize = int64(le.Uint16(sb[254:]))
	}
	groups := (inodesCount + perGroup - 1) / perGroup
	changed := 0
	for g := range int64(groups) {
		desc := make([]byte, descSize)
		if _, err := f.ReadAt(desc, bs+g*descSize); err != nil {
			return "", err
		}
		table := int64(le.Uint32(desc[8:]))
		if descSize >= 64 {
			table |= int64(le.Uint32(desc[0x28:])) << 32
		}
		inodes := make([]byte, int64(perGroup)*inodeSize)
		if _, err := f.ReadAt(inodes, table*bs); err != nil {
			return "", err
		}
		for i := int64(0); i < int64(perGroup); i++ {
			in := inodes[i*inodeSize : (i+1)*inodeSize]
			mode, size, flags := le.Uint16(in[0:]), le.Uint32(in[4:]), le.Uint32(in[0x20:])
			if mode&0xF000 != 0x8000 || size != 0 || flags&0x80000 == 0 {
				continue
			}
			le.PutUint32(in[4:], 1<<30) // i_size: 1 GiB
			iblock := in[0x28 : 0x28+60]
			clear(iblock)
			extentHeader(iblock, 1, 4, 4)
			le.PutUint32(iblock[12+4:], meta[0])
			changed++
		}
		if _, err := f.WriteAt(inodes, table*bs); err != nil {
			return "", err
		}
	}
	if changed != dirs*files {
		return "", fmt.Errorf("%s: %d empty files found in the inode tables, want %d", path, changed, dirs*files)
	}
	return path, nil
}

// extentHeader writes an ext4 extent header.
func extentHeader(b []byte, entries, max, depth int) {
	le.PutUint16(b[0:], 0xF30A)
	le.PutUint16(b[2:], uint16(entries))
	le.PutUint16(b[4:], uint16(max))
	le.PutUint16(b[6:], uint16(depth))
}

// XFSSharedBtree writes a 300 MiB XFS (mkfs.xfs -m crc=0 from a protofile,
// 4 KiB blocks, 256-byte inodes) of 4,000 empty files in 4 directories and
// one file /meta of four blocks, whose empty files are then all given the
// same extent B+tree: a root of level 4 in the inode that names /meta's
// first block, where each node names the next 254 times over and the last
// is an empty leaf. Each file's tree is 4 * 10^9 blocks that map nothing;
// the reader's cap of B+tree blocks per file (65,536) stops each, but only
// after reading that many.
func XFSSharedBtree(ctx context.Context, dir string) (string, error) {
	return XFSSharedBtreeSized(ctx, dir, 4, 1000)
}

// XFSSharedBtreeSized is XFSSharedBtree with dirs directories of files
// empty files each.
func XFSSharedBtreeSized(ctx context.Context, dir string, dirs, files int) (string, error) {
	path := filepath.Join(dir, "shared-btree.xfs")
	empty := filepath.Join(dir, "shared-btree.empty")
	meta := filepath.Join(dir, "shared-btree.meta")
	proto := filepath.Join(dir, "shared-btree.proto")
	defer os.Remove(empty)
	defer os.Remove(meta)
	defer os.Remove(proto)
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(meta, randomBytes(43, 4*4096), 0o644); err != nil {
		return "", err
	}
	var p strings.Builder
	p.WriteString("/dev/null\n0 0\nd--755 0 0\n")
	fmt.Fprintf(&p, "meta ---644 0 0 %s\n", meta)
	for d := range dirs {
		fmt.Fprintf(&p, "d%02d d--755 0 0\n", d)
		for i := range files {
			fmt.Fprintf(&p, "f%05d ---644 0 0 %s\n", i, empty)
		}
		p.WriteString("$\n")
	}
	p.WriteString("$\n")
	if err := os.WriteFile(proto, []byte(p.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(path, 300<<20); err != nil {
		return "", err
	}
	if err := run(ctx, "mkfs.xfs", "-q", "-m", "crc=0", "-b", "size=4096", "-i", "size=256", "-p", proto, path); err != nil {
		return "", err
	}
	// xfs_db names the inodes (ncheck) and /meta's blocks (bmap).
	xfsDB := func(cmds ...string) (string, error) {
		args := []string{"-r"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "xfs_db", append(args, path)...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("xfs_db %q: %w\n%s", cmds, err, out.String())
		}
		return out.String(), nil
	}
	names, err := xfsDB("blockget -n", "ncheck")
	if err != nil {
		return "", err
	}
	var metaIno uint64
	var fileInos []uint64
	for _, line := range strings.Split(names, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		ino, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case f[1] == "meta":
			metaIno = ino
		case strings.HasPrefix(f[1], "d") && strings.Contains(f[1], "/f"):
			fileInos = append(fileInos, ino)
		}
	}
	if metaIno == 0 || len(fileInos) != dirs*files {
		return "", fmt.Errorf("xfs_db ncheck: /meta inode %d and %d files, want %d", metaIno, len(fileInos), dirs*files)
	}
	bmap, err := xfsDB(fmt.Sprintf("inode %d", metaIno), "bmap")
	if err != nil {
		return "", err
	}
	// "data offset 0 startblock 24 (0/24) count 4 flag 0"
	var off, start, count, flag uint64
	var agPair string
	if _, err := fmt.Sscanf(strings.TrimSpace(bmap), "data offset %d startblock %d %s count %d flag %d", &off, &start, &agPair, &count, &flag); err != nil || count != 4 {
		return "", fmt.Errorf("xfs_db bmap of /meta: %q, want one extent of 4 blocks", bmap)
	}

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sb := make([]byte, 512)
	if _, err := f.ReadAt(sb, 0); err != nil {
		return "", err
	}
	be := binary.BigEndian
	blockSize := int64(be.Uint32(sb[4:]))
	agBlocks := int64(be.Uint32(sb[84:]))
	inodeSize := int64(be.Uint16(sb[104:]))
	inopbLog := uint(sb[123])
	agBlkLog := uint(sb[124])
	// fsbOff is the byte offset of a filesystem block number (AG number
	// in the high bits, block in the AG in the low agblklog bits).
	fsbOff := func(fsb uint64) int64 {
		return (int64(fsb>>agBlkLog)*agBlocks + int64(fsb&(1<<agBlkLog-1))) * blockSize
	}
	inodeOff := func(ino uint64) int64 {
		return fsbOff(ino>>inopbLog) + int64(ino&(1<<inopbLog-1))*inodeSize
	}
	// The tree: /meta's block k (level 3-k) names block k+1 254 times;
	// block 3 is an empty leaf. A v4 long-form block header is 24 bytes.
	const hdr = 24
	maxrecs := int((blockSize - hdr) / 16)
	for k := range uint64(4) {
		b := make([]byte, blockSize)
		copy(b, "BMAP")
		level := 3 - int(k)
		be.PutUint16(b[4:], uint16(level))
		be.PutUint64(b[8:], ^uint64(0))  // no left sibling
		be.PutUint64(b[16:], ^uint64(0)) // no right sibling
		if level > 0 {
			be.PutUint16(b[6:], uint16(maxrecs))
			for i := range maxrecs {
				be.PutUint64(b[hdr+maxrecs*8+i*8:], start+k+1)
			}
		}
		if _, err := f.WriteAt(b, fsbOff(start+k)); err != nil {
			return "", err
		}
	}
	// Each empty file: di_format 3 (B+tree), a data fork whose root
	// (level 4, one record) names /meta's first block. A v2 inode core is
	// 100 bytes.
	const core = 100
	forkRecs := int((inodeSize - core - 4) / 16)
	in := make([]byte, inodeSize)
	for _, ino := range fileInos {
		o := inodeOff(ino)
		if _, err := f.ReadAt(in, o); err != nil {
			return "", err
		}
		if string(in[:2]) != "IN" || in[82] != 0 { // di_forkoff: no attribute fork
			return "", fmt.Errorf("%s: inode %d at offset %d is not a plain inode", path, ino, o)
		}
		in[5] = 3                    // di_format: btree
		be.PutUint64(in[56:], 1<<30) // di_size: 1 GiB
		be.PutUint32(in[76:], 1)     // di_nextents
		fork := in[core:]
		clear(fork)
		be.PutUint16(fork[0:], 4) // bb_level
		be.PutUint16(fork[2:], 1) // bb_numrecs
		be.PutUint64(fork[4+forkRecs*8:], start)
		if _, err := f.WriteAt(in, o); err != nil {
			return "", err
		}
	}
	return path, nil
}

// SquashfsMetadataBomb writes a squashfs (mksquashfs -comp zstd) whose
// id table's only metadata block is replaced by one appended to the
// image: a zstd frame (the zstd tool's) of 900 MiB of zeros, 29 KB, where
// a metadata block holds at most 8 KiB. The image is 33 KB. With
// inodeTable, the frame is of 200 MiB (6 KB, so that it fits the 8 KiB a
// metadata block may take on disk too), and the inode and directory
// tables start at it, so that the root inode cannot be read.
func SquashfsMetadataBomb(ctx context.Context, dir string, inodeTable bool) (string, error) {
	name := "metadata-bomb.squashfs"
	if inodeTable {
		name = "inode-bomb.squashfs"
	}
	path := filepath.Join(dir, name)
	src := filepath.Join(dir, name+".src")
	defer os.RemoveAll(src)
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hostname"), []byte("squashed\n"), 0o644); err != nil {
		return "", err
	}
	if err := run(ctx, "mksquashfs", src, path, "-noappend", "-comp", "zstd", "-quiet", "-no-progress"); err != nil {
		return "", err
	}
	var frame bytes.Buffer
	zeros := "900M"
	if inodeTable {
		zeros = "200M"
	}
	cmd := exec.CommandContext(ctx, "bash", "-c", "head -c "+zeros+" /dev/zero | zstd -19 -c --no-check")
	cmd.Stdout = &frame
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("zstd: %w", err)
	}
	if frame.Len() >= 0x8000 {
		return "", fmt.Errorf("zstd wrote %d bytes, more than a metadata block holds", frame.Len())
	}
	img, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	bomb := int64(len(img))
	img = le.AppendUint16(img, uint16(frame.Len())) // compressed: the high bit clear
	img = append(img, frame.Bytes()...)
	idTable := le.Uint64(img[48:])
	if idTable+8 > uint64(bomb) {
		return "", fmt.Errorf("%s: id table at %d", path, idTable)
	}
	le.PutUint64(img[idTable:], uint64(bomb)) // the index's first (only) entry
	le.PutUint64(img[40:], uint64(len(img)))  // bytes_used
	if inodeTable {
		le.PutUint64(img[64:], uint64(bomb)) // inode_table_start
		le.PutUint64(img[72:], uint64(bomb)) // directory_table_start
		le.PutUint64(img[32:], 0)            // root inode: block 0, offset 0
	}
	return path, os.WriteFile(path, img, 0o644)
}

// SquashfsIDBomb is SquashfsMetadataBomb of the id table.
func SquashfsIDBomb(ctx context.Context, dir string) (string, error) {
	return SquashfsMetadataBomb(ctx, dir, false)
}
