package app_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/commonops/commonops/app"
	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/objectstore"
)

// Only a process that serves the console writes the bucket's CORS rule:
// a worker started with the same settings leaves the bucket alone, so its
// credentials need no rights to the bucket's configuration.
func TestS3CORSRuleWrittenByTheAPIRole(t *testing.T) {
	t.Parallel()
	s3 := s3test.Start(t)
	client, err := s3.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tt := range []struct {
		roles     string
		wantRules int
	}{
		{app.RoleWorker, 0},
		{app.RoleAPI, 1},
	} {
		dir := t.TempDir()
		a, err := app.New(ctx, app.Config{Addr: "127.0.0.1:0", Roles: tt.roles, DataDir: dir, DatabaseURL: "sqlite:" + filepath.Join(dir, "ops.db"),
			Storage: app.StorageS3, S3Endpoint: s3.Endpoint, S3Bucket: s3.Bucket, S3Region: s3.Region,
			S3AccessKey: s3.AccessKey, S3SecretKey: s3.SecretKey, S3PathStyle: true,
			S3CORSOrigins: "https://ops.example.com", Logger: quiet()})
		if err != nil {
			t.Fatalf("start with roles %s: %v", tt.roles, err)
		}
		a.Stop()
		got, err := client.GetBucketCors(ctx, s3.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		var rules int
		if got != nil {
			for _, r := range got.CORSRules {
				if r.ID == objectstore.CORSRuleID {
					rules++
				}
			}
		}
		if rules != tt.wantRules {
			t.Fatalf("after a start with roles %s: got %d rules %s, want %d", tt.roles, rules, objectstore.CORSRuleID, tt.wantRules)
		}
	}
}
