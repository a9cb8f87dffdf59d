package registry

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// A layer file that holds findings is hashed for its package provenance
// (layerProvenance) from the scan window when the window holds it whole
// (8 MiB), or as it streams when its path says which digest its records
// hold. A larger file had no digest, so the records of the image could not
// vouch for it, where a guest's disk is read again by path: a Firefox or
// Thunderbird container image (omni.ja, 43 and 87 MB; libxul.so, 184 MB)
// kept the findings in those files that a VM with the same packages gets
// as info. Such files are listed as the walk meets them (unhashed), and
// the layer is read a second time for them only (hashLater).
const (
	// maxRehashFiles and maxRehashBytes bound a layer's second read.
	maxRehashFiles = 1024
	maxRehashBytes = 4 << 30
)

// unhashedFile is a file of a layer, too large for the scan window, that
// holds findings: the tar entry (its index) to hash on the second read.
type unhashedFile struct {
	entry int
	size  int64
}

// noteUnhashed lists tar entry n at p, of size bytes, when its scan found
// something and took no digest.
func (fs *fileScanner) noteUnhashed(p string, n int, size int64) {
	if size <= 0 || len(fs.hitsAt[p]) == 0 || fs.res.Digests[p] != nil {
		return
	}
	if fs.res.unhashed == nil {
		fs.res.unhashed = map[string]unhashedFile{}
	}
	fs.res.unhashed[p] = unhashedFile{entry: n, size: size}
}

// hashLater reads layer b again and keeps the digests of the files that
// res.unhashed lists (largeFileDigests): seeking over the rest where the layer lies
// uncompressed in a local file, else decompressing it again (a remote
// layer is pulled again). It is rare, and bounded (maxRehashFiles,
// maxRehashBytes); what it cannot hash is a note of the layer, and those
// files' findings keep their severity.
func (s *Scanner) hashLater(ctx context.Context, b blob, res *blobResult) {
	want := map[int]string{}
	var paths []string
	for p := range res.unhashed {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return res.unhashed[paths[i]].entry < res.unhashed[paths[j]].entry })
	var total int64
	for i, p := range paths {
		f := res.unhashed[p]
		if i >= maxRehashFiles || total+f.size > maxRehashBytes {
			res.Notes = append(res.Notes, fmt.Sprintf("package provenance: %d files over the scan window hold findings; past %d files or %d MiB they are not hashed, and their findings keep their severity", len(paths), maxRehashFiles, maxRehashBytes>>20))
			break
		}
		total += f.size
		want[f.entry] = p
	}
	res.unhashed = nil
	r, closeAll, err := s.reopenTar(ctx, b)
	if err == nil {
		err = hashEntries(ctx, r, want, res)
		closeAll()
	}
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("package provenance: reading the layer again to hash %d files over the scan window that hold findings: %v; their findings keep their severity", len(want), err))
	}
}

// reopenTar opens blob b's tar again: in place, as a seekable reader,
// where it lies uncompressed in a local file; else as a stream,
// decompressed.
func (s *Scanner) reopenTar(ctx context.Context, b blob) (io.Reader, func(), error) {
	if b.openAt != nil {
		if at, err := b.openAt(ctx); err == nil {
			head := make([]byte, min(at.size, 4))
			if n, _ := at.ReadAt(head, 0); n == len(head) && !compressed(head) {
				return io.NewSectionReader(at, 0, at.size), func() { at.close() }, nil
			}
			at.close()
		}
	}
	rc, err := b.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	dec, _, err := decompressor(bufio.NewReaderSize(rc, 64<<10))
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return dec, func() { dec.Close(); rc.Close() }, nil
}

// hashEntries walks the tar r and keeps in res.Digests the digests of the
// entries want names (tar entry index to path), stopping once all are
// hashed.
func hashEntries(ctx context.Context, r io.Reader, want map[int]string, res *blobResult) error {
	tr := tar.NewReader(r)
	buf := make([]byte, 1<<20)
	for n := 0; len(want) > 0; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the layer ended before tar entry %d", n)
			}
			return fmt.Errorf("tar entry %d: %w", n, err)
		}
		p, ok := want[n]
		if !ok {
			continue
		}
		delete(want, n)
		if got := entryPath(hdr.Name); got != p {
			return fmt.Errorf("tar entry %d is %q on this read, not %q: the layer changed", n, got, p)
		}
		sums, err := largeFileDigests(ctx, tr, buf)
		if err != nil {
			return fmt.Errorf("%q (tar entry %d): %w", p, n, err)
		}
		if res.Digests == nil {
			res.Digests = map[string]map[string][]byte{}
		}
		res.Digests[p] = sums
	}
	return nil
}

// largeFileDigests returns the MD5 (dpkg), SHA-1 (apk) and SHA-256 (rpm,
// Python's RECORD) of what r holds, MD5 on a goroutine of its own: it is
// the slowest (474 MB/s here, against 1.1 and 1.3 GB/s), so the file is
// hashed at about its rate. SHA-512 is left out: only npm's cache records
// it, for tarballs its paths name, which the walk hashes as they stream.
func largeFileDigests(ctx context.Context, r io.Reader, buf []byte) (map[string][]byte, error) {
	m5, s1, s256 := md5.New(), sha1.New(), sha256.New()
	var wg sync.WaitGroup
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			wg.Add(1)
			go func() { defer wg.Done(); m5.Write(buf[:k]) }()
			s1.Write(buf[:k])
			s256.Write(buf[:k])
			wg.Wait()
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return map[string][]byte{"md5": m5.Sum(nil), "sha1": s1.Sum(nil), "sha256": s256.Sum(nil)}, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
