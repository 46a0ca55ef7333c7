package s3test_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/commonops/commonops/internal/s3test"
)

// TestStart checks that each caller gets its own empty, working bucket.
func TestStart(t *testing.T) {
	a, b := s3test.Start(t), s3test.Start(t)
	if a.Bucket == b.Bucket {
		t.Fatalf("got the same bucket %q twice, want one per call", a.Bucket)
	}
	if a.Endpoint != b.Endpoint {
		t.Errorf("got endpoints %s and %s, want one shared gateway", a.Endpoint, b.Endpoint)
	}
	c, err := a.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for o := range c.ListObjects(ctx, a.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		t.Fatalf("got object %q (err %v) in a new bucket, want none", o.Key, o.Err)
	}
	want := []byte("hello")
	if _, err := c.PutObject(ctx, a.Bucket, "k", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}
	o, err := c.GetObject(ctx, a.Bucket, "k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if _, err := c.StatObject(ctx, b.Bucket, "k", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != 404 {
		t.Errorf("got %v for the key in the other bucket, want 404", err)
	}
}
