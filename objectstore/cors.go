package objectstore

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7/pkg/cors"
)

// CORSRuleID names the one CORS rule of the bucket that NewS3 writes
// (S3Config.CORSOrigins): it replaces the rule of that ID and keeps the
// others, which belong to whoever else uses the bucket.
const CORSRuleID = "commonops-browser-uploads"

// corsMaxAge is how long a browser may reuse a preflight's answer, in
// seconds: one preflight an hour rather than one per upload.
const corsMaxAge = 3600

// corsAllowedHeaders are the request headers a browser upload sends: the
// ones PresignPut puts in SignedURL.Headers. Its signature is in the URL's
// query, so no Authorization or x-amz-* header goes with it.
var corsAllowedHeaders = []string{"Content-Type"}

// ParseOrigins reads a comma list of web origins (scheme://host[:port])
// and returns them as browsers send them in an Origin header: lower case,
// without a default port or a trailing slash, which is how S3 compares
// them. A wildcard, a path or a scheme other than http and https is
// refused: each origin is a page that may upload, named exactly.
func ParseOrigins(list string) ([]string, error) {
	var origins []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		o, err := parseOrigin(s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	return origins, nil
}

func parseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.ToLower(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(u.Host, "*") ||
		strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], such as https://ops.example.com", s)
	}
	host := u.Host
	if port := u.Port(); port == "443" && u.Scheme == "https" || port == "80" && u.Scheme == "http" {
		host = u.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
	}
	return u.Scheme + "://" + host, nil
}

// corsRule is the rule that lets pages of origins upload through
// pre-signed PUT URLs: the preflight asks for PUT with Content-Type, and
// the answer's ETag is readable by the page. Downloads need no rule: the
// console sends the browser to the download URL, which is a navigation,
// not a script's request.
func corsRule(origins []string) cors.Rule {
	return cors.Rule{
		ID:            CORSRuleID,
		AllowedOrigin: origins,
		AllowedMethod: []string{"PUT"},
		AllowedHeader: corsAllowedHeaders,
		ExposeHeader:  []string{"ETag"},
		MaxAgeSeconds: corsMaxAge,
	}
}

// corsHint ends the errors of putCORS with what an operator can do.
const corsHint = " (the credentials need s3:GetBucketCORS and s3:PutBucketCORS; or set the rule by hand and leave s3-cors-origins empty)"

// putCORS writes the bucket's CORS configuration with the rule for
// origins in place of the one an earlier start wrote (by CORSRuleID),
// keeping every other rule. Replicas starting together write the same
// rule, so whichever writes last leaves the same configuration.
func (s *S3) putCORS(ctx context.Context, origins []string) error {
	current, err := s.client.GetBucketCors(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3 store: read the CORS configuration of bucket %s: %w%s", s.bucket, err, corsHint)
	}
	var rules []cors.Rule
	if current != nil {
		rules = slices.DeleteFunc(current.CORSRules, func(r cors.Rule) bool { return r.ID == CORSRuleID })
	}
	rules = append(rules, corsRule(origins))
	if err := s.client.SetBucketCors(ctx, s.bucket, cors.NewConfig(rules)); err != nil {
		return fmt.Errorf("s3 store: write the CORS configuration of bucket %s: %w%s", s.bucket, err, corsHint)
	}
	return nil
}
