package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resomap/resomap/internal/s3test"
	"github.com/resomap/resomap/store"
)

// BenchmarkCheckpointThroughput uploads and downloads a 200 MB checkpoint
// to the local S3 server and prints it next to a plain file copy of the same
// bytes on the same disk (target: S3 >= 50% of the copy on loopback).
func BenchmarkCheckpointThroughput(b *testing.B) {
	const size = 200 << 20
	data := make([]byte, size)
	rand.Read(data)
	dir := b.TempDir()
	src := filepath.Join(dir, "src.safetensors")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	srv := s3test.Start(b, filepath.Join(dir, "s3"))
	srv.Env(b)
	srv.CreateBucket(b, "bench")
	ctx := context.Background()
	s3, err := store.Open(ctx, "s3://bench/ckpt")
	if err != nil {
		b.Fatal(err)
	}
	mbps := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	var copyT, upT, downT time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		in, _ := os.Open(src)
		out, _ := os.Create(filepath.Join(dir, "copy.safetensors"))
		io.Copy(out, in)
		out.Sync()
		out.Close()
		in.Close()
		copyT += time.Since(t0)

		t0 = time.Now()
		f, _ := os.Open(src)
		if err := s3.Put(ctx, "big.safetensors", f); err != nil {
			b.Fatal(err)
		}
		f.Close()
		upT += time.Since(t0)

		t0 = time.Now()
		got, err := store.ReadAll(ctx, s3, "big.safetensors")
		if err != nil {
			b.Fatal(err)
		}
		downT += time.Since(t0)
		if !bytes.Equal(got, data) {
			b.Fatal("download differs")
		}
	}
	n := time.Duration(b.N)
	b.ReportMetric(mbps(copyT/n), "copy-MB/s")
	b.ReportMetric(mbps(upT/n), "s3-upload-MB/s")
	b.ReportMetric(mbps(downT/n), "s3-download-MB/s")
	b.ReportMetric(float64(copyT)/float64(upT), "upload/copy")
	b.ReportMetric(float64(copyT)/float64(downT), "download/copy")
}

// BenchmarkFileListInALargeStore lists one training's folder in a file
// store holding what a sweep of 2,000 trainings leaves (16 objects each):
// a training lists its own small folders several times, and must not pay
// for the whole store each time.
func BenchmarkFileListInALargeStore(b *testing.B) {
	dir := b.TempDir()
	st, err := store.NewFile(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for t := range 2000 {
		for k := range 16 {
			key := filepath.ToSlash(filepath.Join("runs", fmt.Sprintf("%016x", t), fmt.Sprintf("epoch_%04d.json", k)))
			if err := st.Put(ctx, key, bytes.NewReader(nil)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		got, err := st.List(ctx, "runs/00000000000003e7/")
		if err != nil || len(got) != 16 {
			b.Fatalf("%d objects, %v", len(got), err)
		}
	}
}
