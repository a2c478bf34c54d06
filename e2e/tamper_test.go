package e2e

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"cloakroom/client"
	"cloakroom/internal/protocol"
)

// chunkFrame rebuilds a ChunkDown frame from d's header fields and sealed.
func chunkFrame(d protocol.ChunkDown, sealed []byte) []byte {
	return append(d.DownHeader(), sealed...)
}

// onlyFile applies edit to the chunks of the n-th file (0-based, in order of
// first appearance on the connection) and passes every other frame through.
func onlyFile(n int, edit func(d protocol.ChunkDown) [][]byte) func() frameTransform {
	return func() frameTransform {
		var files [][16]byte
		return func(frame []byte) [][]byte {
			d, err := protocol.ParseChunkDown(frame)
			if err != nil {
				return [][]byte{frame}
			}
			i := slices.Index(files, d.File)
			if i < 0 {
				files = append(files, d.File)
				i = len(files) - 1
			}
			if i != n {
				return [][]byte{frame}
			}
			return edit(d)
		}
	}
}

// holdSwap holds chunk 1 of the first file and, when chunk 2 comes, emits
// what pair returns for (chunk 1, chunk 2).
func holdSwap(pair func(d1, d2 protocol.ChunkDown) [][]byte) func() frameTransform {
	return func() frameTransform {
		var held *protocol.ChunkDown
		return onlyFile(0, func(d protocol.ChunkDown) [][]byte {
			switch d.Index {
			case 1:
				held = &d
				return nil
			case 2:
				if held == nil {
					panic("chunk 2 before chunk 1")
				}
				return pair(*held, d)
			}
			return [][]byte{chunkFrame(d, d.Sealed)}
		})()
	}
}

// otherFileChunk replaces chunk 1 of the second file with the first file's
// chunk 1, its header rewritten to the second file.
func otherFileChunk() frameTransform {
	var files [][16]byte
	aChunks := map[uint32][]byte{}
	return func(frame []byte) [][]byte {
		d, err := protocol.ParseChunkDown(frame)
		if err != nil {
			return [][]byte{frame}
		}
		i := slices.Index(files, d.File)
		if i < 0 {
			files = append(files, d.File)
			i = len(files) - 1
		}
		switch {
		case i == 0:
			aChunks[d.Index] = bytes.Clone(d.Sealed)
		case i == 1 && d.Index == 1:
			a, ok := aChunks[1]
			if !ok {
				panic("file A's chunk 1 not seen")
			}
			return [][]byte{chunkFrame(d, a)}
		}
		return [][]byte{frame}
	}
}

// TestTamperedChunksDetected: a man in the middle between the server and a
// receiver rewrites the chunk frames of a file. The receiver must report the
// file as failed with ErrIntegrity (or, for a dropped chunk, never report
// it), never leave the file in place, and still receive a good file sent
// afterwards (which also shows that nothing more was reported about the
// tampered one: the relay delivers one sender's items in order).
func TestTamperedChunksDetected(t *testing.T) {
	const size = 3*protocol.ChunkSize + 1000 // 4 chunks
	cases := []struct {
		name string
		down func() frameTransform
		// twoFiles: file A is sent (and received) first, untouched; file B,
		// of the same size, is the tampered one.
		twoFiles bool
		// dropped: the tampered file is never reported.
		dropped bool
	}{
		{name: "flip one bit", down: onlyFile(0, func(d protocol.ChunkDown) [][]byte {
			s := bytes.Clone(d.Sealed)
			if d.Index == 1 {
				s[len(s)/2] ^= 0x10
			}
			return [][]byte{chunkFrame(d, s)}
		})},
		{name: "swap sealed payloads of chunks 1 and 2", down: holdSwap(func(d1, d2 protocol.ChunkDown) [][]byte {
			return [][]byte{chunkFrame(d1, d2.Sealed), chunkFrame(d2, d1.Sealed)}
		})},
		{name: "reorder chunk 2 as index 1", down: holdSwap(func(d1, d2 protocol.ChunkDown) [][]byte {
			r2, r1 := d2, d1
			r2.Index, r1.Index = 1, 2
			return [][]byte{chunkFrame(r2, d2.Sealed), chunkFrame(r1, d1.Sealed)}
		})},
		{name: "truncate: drop the final chunk, previous one made final", down: onlyFile(0, func(d protocol.ChunkDown) [][]byte {
			if d.Index == d.Count-1 {
				return nil
			}
			d.Count--
			d.Final = d.Index == d.Count-1
			return [][]byte{chunkFrame(d, d.Sealed)}
		})},
		{name: "sealed chunk one byte short", down: onlyFile(0, func(d protocol.ChunkDown) [][]byte {
			s := d.Sealed
			if d.Index == 1 {
				s = s[:len(s)-1]
			}
			return [][]byte{chunkFrame(d, s)}
		})},
		{name: "chunk from another file", down: otherFileChunk, twoFiles: true},
		{name: "dropped chunk", dropped: true, down: onlyFile(0, func(d protocol.ChunkDown) [][]byte {
			if d.Index == 1 {
				return nil
			}
			return [][]byte{chunkFrame(d, d.Sealed)}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			ts := newServer(t, serverOpts{})
			secret := newSecret(t)
			mitm := newWSMITM(t, ts.URL, mitmOpts{Down: tc.down})
			sender := dialPeer(ctx, t, secret.Link(ts.URL), "sender", nil)
			recv := dialPeer(ctx, t, secret.Link(mitm.HTTP.URL), "receiver", nil)
			meshOnline(ctx, t, sender, recv)
			src := t.TempDir()
			var good []string // files the receiver must end up with

			if tc.twoFiles {
				pathA, sumA := makeFile(t, src, "file-a.bin", size, "")
				if _, err := sender.SendFile(ctx, pathA); err != nil {
					t.Fatalf("SendFile A: %v", err)
				}
				f := nextFile(ctx, t, recv)
				if f.Err != nil || f.Name != "file-a.bin" || f.SHA256 != sumA {
					t.Fatalf("file A (untouched) received as %+v", f)
				}
				good = append(good, "file-a.bin")
			}

			// The tampered file. Its sender may never hear "delivered" (a
			// chunk the receiver never gets is never acked): it runs until
			// the end of the case.
			const name = "tampered.bin"
			path, _ := makeFile(t, src, name, size, "")
			sctx, cancel := context.WithCancel(ctx)
			res := sendAsync(sctx, sender, path)
			defer func() {
				cancel()
				awaitSend(ctx, t, res)
			}()
			// Once it is uploaded, a good file: the server stores (and
			// delivers) its items after every chunk of the tampered one.
			_, err := sender.progress.wait(ctx, func(ps []client.Progress) bool {
				return slices.ContainsFunc(ps, func(p client.Progress) bool {
					return p.Sending && p.Peer == "" && p.Name == name && p.Bytes == p.Total
				})
			})
			if err != nil {
				t.Fatalf("waiting for the upload of the tampered file: %v", err)
			}
			goodPath, goodSum := makeFile(t, src, "good.bin", 2*protocol.ChunkSize+5, "")
			goodRes := sendAsync(ctx, sender, goodPath)

			if !tc.dropped {
				f := nextFile(ctx, t, recv)
				switch {
				case f.Name != name:
					t.Fatalf("receiver reported %+v first, want the failure of %s", f, name)
				case f.Err == nil:
					t.Fatalf("receiver accepted the tampered file: %+v", f)
				case !errors.Is(f.Err, client.ErrIntegrity):
					t.Fatalf("tampered file failed with %v, want an error wrapping client.ErrIntegrity", f.Err)
				}
				t.Logf("detected: %v", f.Err)
			}
			f := nextFile(ctx, t, recv)
			if f.Err != nil || f.Name != "good.bin" || f.SHA256 != goodSum {
				t.Fatalf("after the tampered file the receiver reported %+v, want good.bin intact", f)
			}
			if got := fileSHA256(t, f.Path); got != goodSum {
				t.Fatalf("good.bin on disk has SHA-256 %s, want %s", got, goodSum)
			}
			good = append(good, "good.bin")
			if r := awaitSend(ctx, t, goodRes); r.err != nil {
				t.Errorf("SendFile of the good file: %v", r.err)
			}

			slices.Sort(good)
			if got := visibleFiles(t, recv.dir); !slices.Equal(got, good) {
				t.Errorf("receiver's directory holds %q, want exactly %q (no %s)", got, good, name)
			}
		})
	}
}
