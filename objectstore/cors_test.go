package objectstore_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7/pkg/cors"

	"github.com/commonops/commonops/internal/s3test"
	"github.com/commonops/commonops/objectstore"
)

func TestParseOrigins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, list string
		want       []string
		wantErr    bool
	}{
		{"empty", " , ", nil, false},
		{"as browsers send them", "HTTPS://Ops.Example.com/, http://localhost:8080", []string{"https://ops.example.com", "http://localhost:8080"}, false},
		{"default ports dropped", "https://ops.example.com:443,http://[::1]:80", []string{"https://ops.example.com", "http://[::1]"}, false},
		{"duplicates once", "https://a.example,https://a.example/", []string{"https://a.example"}, false},
		{"wildcard", "https://*.example.com", nil, true},
		{"bare star", "*", nil, true},
		{"path", "https://ops.example.com/console/", nil, true},
		{"no scheme", "ops.example.com", nil, true},
		{"other scheme", "ftp://ops.example.com", nil, true},
		{"query", "https://ops.example.com?x=1", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objectstore.ParseOrigins(tt.list)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestS3CORSRule starts the store with CORS origins on a bucket that has a
// rule of someone else: the store adds its own rule and keeps the other; a
// later start with other origins replaces its rule rather than adding one.
// The gateway then answers a browser's preflight of a pre-signed upload
// for the origins named, and for no other.
func TestS3CORSRule(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	client, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	theirs := cors.Rule{ID: "reports", AllowedOrigin: []string{"https://reports.example"}, AllowedMethod: []string{"GET"}}
	if err := client.SetBucketCors(ctx, srv.Bucket, cors.NewConfig([]cors.Rule{theirs})); err != nil {
		t.Fatal(err)
	}
	var s *objectstore.S3
	for _, origins := range [][]string{{"http://old.example"}, {"http://localhost:8080", "https://ops.example"}} {
		s, err = objectstore.NewS3(ctx, objectstore.S3Config{
			Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			PathStyle: true, CORSOrigins: origins,
		})
		if err != nil {
			t.Fatalf("NewS3 with CORS origins %q: %v", origins, err)
		}
	}
	got, err := client.GetBucketCors(ctx, srv.Bucket)
	if err != nil || got == nil {
		t.Fatalf("GetBucketCors: got %v, %v; want the rules", got, err)
	}
	var ids []string
	var ours cors.Rule
	for _, r := range got.CORSRules {
		ids = append(ids, r.ID)
		if r.ID == objectstore.CORSRuleID {
			ours = r
		}
	}
	if !slices.Equal(ids, []string{"reports", objectstore.CORSRuleID}) {
		t.Fatalf("rules: got IDs %q, want [reports %s]", ids, objectstore.CORSRuleID)
	}
	if !slices.Equal(ours.AllowedOrigin, []string{"http://localhost:8080", "https://ops.example"}) ||
		!slices.Equal(ours.AllowedMethod, []string{"PUT"}) || !slices.Equal(ours.ExposeHeader, []string{"ETag"}) {
		t.Fatalf("our rule: got %+v, want PUT from the second start's origins, exposing ETag", ours)
	}

	key := objectstore.InputKey(uuid.NewString(), "in.csv")
	u, err := s.PresignPut(ctx, key, objectstore.PutOptions{ContentType: "text/csv"})
	if err != nil {
		t.Fatal(err)
	}
	preflight := func(origin string) response {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": "PUT"}
		var names []string
		for k := range u.Headers {
			names = append(names, strings.ToLower(k))
		}
		h["Access-Control-Request-Headers"] = strings.Join(names, ",")
		return do(t, http.MethodOptions, u.URL, h, nil)
	}
	resp := preflight("https://ops.example")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://ops.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("preflight from an origin of the rule: got %d %v %s, want 200 allowing it and exposing ETag", resp.StatusCode, resp.Header, resp.body)
	}
	for _, origin := range []string{"http://old.example", "https://elsewhere.example"} {
		if resp := preflight(origin); resp.StatusCode == http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: got %d allowing %q, want it refused", origin, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	// The upload itself carries the header a page needs to read its answer.
	h := map[string]string{"Origin": "https://ops.example"}
	for k, v := range u.Headers {
		h[k] = v
	}
	if resp := do(t, http.MethodPut, u.URL, h, []byte("sku\n")); resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://ops.example" {
		t.Fatalf("upload from https://ops.example: got %d allowing %q, want 200 allowing it", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// Without the rights to a bucket's CORS configuration, a start that asks
// for a rule fails and says what to do, rather than leave browser uploads
// failing later.
func TestS3CORSRuleRefused(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	_, err := objectstore.NewS3(context.Background(), objectstore.S3Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: "not-the-secret",
		PathStyle: true, CORSOrigins: []string{"https://ops.example"},
	})
	if err == nil || !strings.Contains(err.Error(), "s3-cors-origins") {
		t.Fatalf("got %v, want an error naming s3-cors-origins", err)
	}
}
