package crypto

import (
	"testing"
)

const benchChunk = 64512 // protocol.ChunkSize

func benchCipher(b *testing.B) *ChunkCipher {
	c, err := NewChunkCipher(labelBytes("bench key", 32), testRoom(b).RoomID, memberA, uuidBytes(b, testFileID), 1<<24, int64(benchChunk)<<24)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkChunkSeal seals 64512-byte chunks (the hot path of a transfer).
func BenchmarkChunkSeal(b *testing.B) {
	c := benchCipher(b)
	pt := make([]byte, benchChunk)
	dst := make([]byte, 0, benchChunk+gcmTagLen)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	var i uint32
	for b.Loop() {
		dst = c.Seal(dst[:0], i&0xffff, pt)
		i++
	}
}

// BenchmarkChunkOpen opens 64512-byte chunks.
func BenchmarkChunkOpen(b *testing.B) {
	c := benchCipher(b)
	sealed := c.Seal(nil, 5, make([]byte, benchChunk))
	dst := make([]byte, 0, benchChunk)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = c.Open(dst[:0], 5, false, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunkSealParallel seals from every CPU with one cipher.
func BenchmarkChunkSealParallel(b *testing.B) {
	c := benchCipher(b)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pt := make([]byte, benchChunk)
		dst := make([]byte, 0, benchChunk+gcmTagLen)
		for pb.Next() {
			dst = c.Seal(dst[:0], 7, pt)
		}
	})
}

// BenchmarkRawGCMSeal is the baseline: plain AES-256-GCM Seal of the same size
// with a fixed nonce and a 60-byte AAD.
func BenchmarkRawGCMSeal(b *testing.B) {
	g := newGCM(labelBytes("bench key", 32))
	pt := make([]byte, benchChunk)
	dst := make([]byte, 0, benchChunk+gcmTagLen)
	nonce := make([]byte, gcmNonceLen)
	aad := make([]byte, 60)
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	for b.Loop() {
		dst = g.Seal(dst[:0], nonce, pt, aad)
	}
}

func BenchmarkEnvelopeSeal(b *testing.B) {
	k := testRoom(b)
	pt := []byte(`{"kind":"chat","text":"hello, this is a chat message of moderate length"}`)
	meta := EnvelopeMeta{Sender: memberA}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.SealEnvelope(meta, pt); err != nil {
			b.Fatal(err)
		}
	}
}
